"""Public, registered, serializable Keras 3 attention layers."""
