"""motionsep: learn a motion from reference clips, generate it with any appearance.

Implements "Separate Motion from Appearance" (arXiv 2501.16714): Temporal Attention Purification,
Appearance Highway and Phased LoRA Integration, on diffusers + peft + accelerate.
"""

__version__ = "0.1.0"

from .errors import MotionsepError

__all__ = ["MotionsepError", "__version__"]
