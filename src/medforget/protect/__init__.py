"""Protect images before release: small pixel perturbations that steer a VLM's vision features,
measured for visibility (PSNR, SSIM) and checked against common post-processings."""

from medforget.protect.attacks import DEFAULT_EPS, METHODS, Protector, protect_batches
from medforget.protect.encoder import EnsembleEncoder, VisionEncoder
from medforget.protect.io import MANIFEST, protect_folder
from medforget.protect.quality import psnr, ssim
from medforget.protect.transforms import TRANSFORMS, get_transform

__all__ = [
    "DEFAULT_EPS", "METHODS", "MANIFEST", "Protector", "protect_batches", "EnsembleEncoder", "VisionEncoder",
    "protect_folder", "psnr", "ssim", "TRANSFORMS", "get_transform",
]
