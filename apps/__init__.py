"""Applications built on keras_attention: each trains, evaluates, plots and exports."""

# The five applications, in the order the main job runs them.
APPS = ("sentiment", "translation", "image_classification", "captioning", "keyword_spotting")
