"""Keyword spotting with attention: which word was said, and when (de Andrade et al. 2018)."""
