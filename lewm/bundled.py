"""The bundled model folder (models/pusht-keypoints), found from any working directory: every command that takes a
model folder defaults to it."""
from pathlib import Path

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "models" / "pusht-keypoints"
