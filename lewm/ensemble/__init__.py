"""The model's uncertainty: an ensemble of small predictors on the frozen encoder's latents (model.py) and its
training (training.py)."""
