"""The pixel decoder, trained after the model on its frozen latents: the network and its folder files (model.py),
its training (training.py), and reading decoded pictures (pixels.py, numpy and OpenCV only)."""
