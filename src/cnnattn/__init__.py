"""cnnattn: attention modules for convolutional networks, placed in real backbones in one call.

>>> import cnnattn, torchvision
>>> model = cnnattn.attach(torchvision.models.resnet50(), "cbam")   # or cnnattn.create_model("resnet50_cbam")
"""

from .analysis import profile
from .attention import create_attention, list_attention, register_attention
from .fast_paths import set_fast_paths
from .models import attach, create_detector, create_model, list_models, load_checkpoint
from .utils import package_version
from .visualize import capture

__version__ = package_version()

__all__ = [
    "__version__",
    "attach",
    "capture",
    "create_attention",
    "create_detector",
    "create_model",
    "list_attention",
    "list_models",
    "load_checkpoint",
    "profile",
    "register_attention",
    "set_fast_paths",
]
