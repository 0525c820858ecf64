"""Training recipes: the schedule (warm-up then cosine), label smoothing, augmentation, and
which recipe a run gets (issue 20: a ViT recipe for small data)."""

import dataclasses
import math

import numpy as np
import pytest
import tensorflow as tf

from apps.image_classification import model as model_lib
from apps.image_classification import pipeline, train


def _lr(schedule, step):
    return float(schedule(step))


def test_small_data_schedule_warms_up_linearly_then_decays_by_a_cosine_to_zero():
    peak, steps = 1e-3, 1000
    schedule = model_lib.learning_rate_schedule(peak, steps, warmup_fraction=0.1)  # 100 steps
    start = peak / 100  # the first step already learns
    assert _lr(schedule, 0) == pytest.approx(start, rel=1e-5)
    assert _lr(schedule, 50) == pytest.approx(start + (peak - start) / 2, rel=1e-5)
    assert _lr(schedule, 100) == pytest.approx(peak, rel=1e-5)
    # Then peak * (1 + cos(pi * t)) / 2 over the 900 steps left.
    for step in (325, 550, 775):
        t = (step - 100) / 900
        assert _lr(schedule, step) == pytest.approx(peak * (1 + math.cos(math.pi * t)) / 2,
                                                    rel=1e-4, abs=1e-9)
    assert _lr(schedule, 550) == pytest.approx(peak / 2, rel=1e-4)
    assert _lr(schedule, 1000) == pytest.approx(0.0, abs=1e-9)
    assert _lr(schedule, 5000) == pytest.approx(0.0, abs=1e-9)  # stays at the end


def test_standard_schedule_is_the_one_the_cnns_always_had():
    peak, steps = 3e-3, 1000  # warm-up: min(1000 // 20, 200) = 50 steps from peak / 10
    schedule = model_lib.learning_rate_schedule(peak, steps)
    assert _lr(schedule, 0) == pytest.approx(peak / 10, rel=1e-5)
    assert _lr(schedule, 25) == pytest.approx(peak / 10 + (peak - peak / 10) / 2, rel=1e-5)
    assert _lr(schedule, 50) == pytest.approx(peak, rel=1e-5)
    assert _lr(schedule, 1000) == pytest.approx(peak * 0.01, rel=1e-4)  # alpha = 0.01


@pytest.mark.parametrize("kwargs, message", [
    ({"peak": 0.0, "steps": 10}, "peak must be > 0"),
    ({"peak": 1e-3, "steps": 0}, "steps must be a positive integer"),
    ({"peak": 1e-3, "steps": 10, "warmup_fraction": 1.0}, r"warmup_fraction must be in \[0, 1\)"),
])
def test_bad_schedule_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        model_lib.learning_rate_schedule(**kwargs)


def test_label_smoothing_loss_matches_numpy():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 3.0]], np.float32)
    labels = np.array([0, 1])
    loss = model_lib.SparseCrossentropyWithSmoothing(3, label_smoothing=0.3)
    target = np.full((2, 3), 0.3 / 3) + 0.7 * np.eye(3)[labels]
    log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    expected = float(np.mean(-(target * log_p).sum(axis=1)))
    assert float(loss(labels, logits)) == pytest.approx(expected, rel=1e-5)
    assert model_lib.SparseCrossentropyWithSmoothing.from_config(loss.get_config()) \
        .label_smoothing == 0.3
    with pytest.raises(ValueError, match="label_smoothing"):
        model_lib.SparseCrossentropyWithSmoothing(3, label_smoothing=1.0)


def test_translation_shifts_the_image_and_flips_mirror_it():
    image = np.zeros((8, 8, 1), np.uint8)
    image[3, 2] = 255
    tf.random.set_seed(0)
    positions = set()
    for seed in range(40):
        moved = pipeline.augment(tf.constant(image), translate=2, seed=seed).numpy()
        assert moved.shape == image.shape and moved.sum() == 255  # moved, not lost
        (row,), (col,) = np.nonzero(moved[..., 0])
        assert abs(row - 3) <= 2 and abs(col - 2) <= 2
        positions.add((int(row), int(col)))
    assert len(positions) > 5
    flips = {int(np.nonzero(pipeline.augment(tf.constant(image), flip=True, seed=s)
                            .numpy()[3, :, 0])[0][0]) for s in range(20)}
    assert flips == {2, 5}  # as it is, or mirrored (8 - 1 - 2)


def test_make_dataset_refuses_augmentation_that_cannot_apply():
    split = tf.data.Dataset.from_tensors((tf.zeros((8, 8, 1), tf.uint8), 1, tf.zeros(4)))
    with pytest.raises(ValueError, match="boxes=True with translate or flip"):
        pipeline.make_dataset(split, 2, training=True, boxes=True, translate=2)
    with pytest.raises(ValueError, match="training=False"):
        pipeline.make_dataset(split, 2, flip=True)
    with pytest.raises(ValueError, match="translate must be a non-negative integer"):
        pipeline.make_dataset(split, 2, training=True, translate=-1)
    images, _ = next(iter(pipeline.make_dataset(split, 2, training=True, translate=2, flip=True)))
    assert images.shape == (1, 8, 8, 1) and images.dtype == tf.float32


def test_each_run_gets_its_recipe():
    # The ViT: `augmented` on the plain garments (better there), `small_data` elsewhere.
    vit = train.TrainConfig(dataset="fashion_mnist", model=model_lib.ModelConfig(variant="vit"))
    assert vit.training_recipe() == model_lib.RECIPES["augmented"]
    vit = train.TrainConfig(dataset="cluttered_fashion_mnist",
                            model=model_lib.ModelConfig(variant="vit"))
    recipe = vit.training_recipe()
    assert recipe.name == "small_data" and recipe.flip and recipe.translate == 4
    assert recipe.warmup_fraction == 0.1 and recipe.label_smoothing == 0.1
    # Digits: no flips (a mirrored 2 is no 2), the rest of the recipe stays.
    digits = train.TrainConfig(model=model_lib.ModelConfig(variant="vit")).training_recipe()
    assert digits.name == "small_data" and not digits.flip and digits.translate == 4
    # The CNNs: shifts and flips on the plain garments, none on canvases (already placed
    # at random), no flips on digits.
    plain = train.TrainConfig(dataset="fashion_mnist", model=model_lib.ModelConfig(variant="plain"))
    recipe = plain.training_recipe()
    assert recipe.name == "augmented" and recipe.flip and recipe.translate == 2
    assert recipe.learning_rate == model_lib.RECIPES["standard"].learning_rate
    cluttered = train.TrainConfig(dataset="cluttered_fashion_mnist",
                                  model=model_lib.ModelConfig(variant="se"))
    assert cluttered.training_recipe() == model_lib.RECIPES["standard"]
    assert train.TrainConfig().training_recipe() == model_lib.RECIPES["standard"]
    chosen = train.TrainConfig(dataset="cluttered_fashion_mnist", recipe="small_data",
                               model=model_lib.ModelConfig(variant="cbam"))
    assert chosen.training_recipe() == model_lib.RECIPES["small_data"]
    with pytest.raises(ValueError, match="recipe must be 'auto' or one of"):
        train.TrainConfig(recipe="fancy")


def test_compile_uses_the_recipe_unless_the_model_config_sets_the_rate():
    config = model_lib.ModelConfig(variant="vit", input_shape=(8, 8, 1), patch_size=4, vit_dim=8,
                                   vit_layers=1, vit_heads=2, vit_mlp_dim=8)
    classifier = model_lib.build_model(config)
    model_lib.compile_model(classifier.model, classifier.config, 100, jit_compile=False)
    optimizer = classifier.model.optimizer
    assert optimizer.weight_decay == pytest.approx(0.05)
    # Step 0 of the small-data warm-up: 10 of the 100 steps, from 1e-3 / 10.
    assert float(optimizer.learning_rate) == pytest.approx(1e-4)
    assert isinstance(classifier.model.loss, model_lib.SparseCrossentropyWithSmoothing)
    cnn = model_lib.build_model(dataclasses.replace(config, variant="plain", widths=(4, 4, 4),
                                                   learning_rate=1e-2))
    model_lib.compile_model(cnn.model, cnn.config, 100, jit_compile=False)
    assert float(cnn.model.optimizer.learning_rate) == pytest.approx(1e-3)  # 1e-2 / 10
    assert cnn.model.optimizer.weight_decay == pytest.approx(1e-4)
