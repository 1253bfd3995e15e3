"""vqvideo: Predicting Video with VQ-VAE (Walker, Razavi, van den Oord, 2021), reproduced end to end."""

__version__ = "0.1.0"
