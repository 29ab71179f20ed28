"""Small shared building blocks: the device choice and the generic registry."""

from core.device import DEVICE
from core.registry import Registry

__all__ = ["DEVICE", "Registry"]
