"""Keyword spotting with attention: which word was said, and when (de Andrade et al. 2018).

Where each piece lives (the rooms of apps/README.md, and three helpers):

- `acquire.py`: the speech engines espeak-ng and flite, installed from Debian
  (`apt-get install`), and their versions;
- `builder.py`: the `synthetic_speech_commands` tfds builder and its configs;
- `synth.py` (helper, numpy only): the builder's raw material: voices, the
  recipe of every clip, synthesis with the engines, noise and mixing;
- `pipeline.py`: `load_splits` and `make_dataset`: tf.data of waveforms and labels;
- `audio.py` (helper): resampling, fitting to 1 s and speed perturbation in
  TensorFlow ops, shared by the pipeline and the SavedModel;
- `channel.py` (helper): real-world channel augmentation of training clips in
  TensorFlow ops: room reverberation, microphone EQ, level and clipping, telephone line;
- `features.py`: the log-mel front end and the spectrogram augmentations (layers);
- `speech_embedding.py` (helper): the speech embedding pretrained on real speech
  (Lin et al. 2020), fetched from PyPI and rebuilt from Keras ops;
- `model.py`: `ModelConfig`, `build_model` (the classifier and the explainer
  that also returns the attention over time), `compile_model`,
  `product_of_experts` (the default export: the variant and the speech embedding);
- `train.py`: `TrainConfig`, `run`, `main` (`python -m apps.keyword_spotting.train`);
- `evaluation.py`: `evaluate` on the unseen voices, confusion matrix and attention plots;
- `export.py`: the SavedModel's signatures (WAV bytes or waveforms);
- `wav.py` (helper): the in-graph WAV parser of the `serving_default` signature.
"""
