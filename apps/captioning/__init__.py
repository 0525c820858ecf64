"""Image captioning with soft visual attention (Show, Attend and Tell) on emoji scenes."""
