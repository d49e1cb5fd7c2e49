from .unet import PRESETS, UNet, UNetConfig, count_parameters, preset_config

__all__ = ["UNet", "UNetConfig", "PRESETS", "preset_config", "count_parameters"]
