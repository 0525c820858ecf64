"""Applications built on keras_attention: each trains, evaluates, plots and exports."""
