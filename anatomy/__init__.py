"""Model anatomy, the visualization half of interpretability: layers, filters, feature maps, activation maximization."""

from anatomy.layers import FeatureMaps, Layer, conv_layers, feature_maps, filters, layers
from anatomy.maximize import Objective, class_model, maximize

__all__ = ["FeatureMaps", "Layer", "Objective", "class_model", "conv_layers", "feature_maps", "filters", "layers", "maximize"]
