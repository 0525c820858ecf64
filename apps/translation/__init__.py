"""Translation: English -> French (and more) with RNNsearch, Luong attention and Transformers."""
