/* Loads a SavedModel the way TF Serving does and answers requests with it.
 *
 * TF Serving's C++ server loads a version with tensorflow::LoadSavedModel: a TF1
 * graph and Session whose variables are restored through the SavedModel's saver.
 * TF_LoadSessionFromSavedModel (TensorFlow's C API, in the pip wheel's
 * libtensorflow_cc) calls that same loader, so a model that answers here loads in
 * the server. No Python, no project code.
 *
 *   tf_serving_loader EXPORT_DIR REQUESTS OUTPUTS
 *
 * REQUESTS (little-endian): u32 request count; per request: u32 input count, per
 * input: u32 + tensor name ("serving_default_text:0"), u32 + serialized
 * TensorProto; then u32 output count, per output: u32 + tensor name.
 * OUTPUTS: per request, per output: u32 dtype, u32 rank, i64 dims[rank], then for
 * strings u64 + bytes per element, else u64 byte count + raw data.
 * Exit status 0 on success; 2 for bad use; 3 if loading fails; 4 if a run fails
 * (with TensorFlow's message on stderr).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensorflow/c/c_api.h"

static FILE *in_file;

static uint32_t read_u32(void) {
  uint32_t v;
  if (fread(&v, 4, 1, in_file) != 1) {
    fprintf(stderr, "requests file ends early\n");
    exit(2);
  }
  return v;
}

static char *read_bytes(uint32_t n) {
  char *buf = malloc(n + 1);
  if (n && fread(buf, 1, n, in_file) != n) {
    fprintf(stderr, "requests file ends early\n");
    exit(2);
  }
  buf[n] = 0;
  return buf;
}

/* "op_name:3" -> the graph's output; exits when the graph has no such op. */
static TF_Output output_named(TF_Graph *graph, char *name) {
  char *colon = strrchr(name, ':');
  int index = 0;
  if (colon) {
    index = atoi(colon + 1);
    *colon = 0;
  }
  TF_Operation *op = TF_GraphOperationByName(graph, name);
  if (!op) {
    fprintf(stderr, "the loaded graph has no operation %s\n", name);
    exit(2);
  }
  TF_Output out = {op, index};
  return out;
}

static void write_tensor(FILE *out, TF_Tensor *t) {
  uint32_t dtype = TF_TensorType(t), rank = TF_NumDims(t);
  fwrite(&dtype, 4, 1, out);
  fwrite(&rank, 4, 1, out);
  int64_t count = 1;
  for (uint32_t d = 0; d < rank; d++) {
    int64_t dim = TF_Dim(t, d);
    count *= dim;
    fwrite(&dim, 8, 1, out);
  }
  if (dtype == TF_STRING) {
    const TF_TString *items = TF_TensorData(t);
    for (int64_t i = 0; i < count; i++) {
      uint64_t n = TF_TString_GetSize(&items[i]);
      fwrite(&n, 8, 1, out);
      fwrite(TF_TString_GetDataPointer(&items[i]), 1, n, out);
    }
  } else {
    uint64_t n = TF_TensorByteSize(t);
    fwrite(&n, 8, 1, out);
    fwrite(TF_TensorData(t), 1, n, out);
  }
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: %s EXPORT_DIR REQUESTS OUTPUTS\n", argv[0]);
    return 2;
  }
  in_file = fopen(argv[2], "rb");
  FILE *out = fopen(argv[3], "wb");
  if (!in_file || !out) {
    fprintf(stderr, "cannot open %s or %s\n", argv[2], argv[3]);
    return 2;
  }
  TF_Status *status = TF_NewStatus();
  TF_SessionOptions *options = TF_NewSessionOptions();
  TF_Graph *graph = TF_NewGraph();
  const char *tags[] = {"serve"};
  TF_Session *session = TF_LoadSessionFromSavedModel(options, NULL, argv[1], tags, 1, graph,
                                                     NULL, status);
  if (TF_GetCode(status) != TF_OK) {
    fprintf(stderr, "LoadSavedModel failed: %s\n", TF_Message(status));
    return 3;
  }
  uint32_t requests = read_u32();
  for (uint32_t r = 0; r < requests; r++) {
    uint32_t n_in = read_u32();
    TF_Output *inputs = calloc(n_in ? n_in : 1, sizeof(TF_Output));
    TF_Tensor **values = calloc(n_in ? n_in : 1, sizeof(TF_Tensor *));
    for (uint32_t i = 0; i < n_in; i++) {
      char *name = read_bytes(read_u32());
      inputs[i] = output_named(graph, name);
      uint32_t size = read_u32();
      char *proto = read_bytes(size);
      TF_Buffer *buffer = TF_NewBufferFromString(proto, size);
      values[i] = TF_AllocateTensor(TF_FLOAT, NULL, 0, sizeof(float)); /* replaced below */
      TF_TensorFromProto(buffer, values[i], status);
      if (TF_GetCode(status) != TF_OK) {
        fprintf(stderr, "bad TensorProto for input %u: %s\n", i, TF_Message(status));
        return 2;
      }
      TF_DeleteBuffer(buffer);
      free(proto);
      free(name);
    }
    uint32_t n_out = read_u32();
    TF_Output *outputs = calloc(n_out ? n_out : 1, sizeof(TF_Output));
    TF_Tensor **results = calloc(n_out ? n_out : 1, sizeof(TF_Tensor *));
    for (uint32_t i = 0; i < n_out; i++) {
      char *name = read_bytes(read_u32());
      outputs[i] = output_named(graph, name);
      free(name);
    }
    TF_SessionRun(session, NULL, inputs, values, n_in, outputs, results, n_out, NULL, 0, NULL,
                  status);
    if (TF_GetCode(status) != TF_OK) {
      fprintf(stderr, "request %u failed: %s\n", r, TF_Message(status));
      return 4;
    }
    for (uint32_t i = 0; i < n_out; i++) {
      write_tensor(out, results[i]);
      TF_DeleteTensor(results[i]);
    }
    for (uint32_t i = 0; i < n_in; i++) TF_DeleteTensor(values[i]);
    free(inputs);
    free(values);
    free(outputs);
    free(results);
  }
  fclose(out);
  TF_CloseSession(session, status);
  TF_DeleteSession(session, status);
  TF_DeleteGraph(graph);
  TF_DeleteSessionOptions(options);
  TF_DeleteStatus(status);
  return 0;
}
