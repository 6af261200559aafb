from .model import ModelOutput, MultimodalModel, build_model

__all__ = ["ModelOutput", "MultimodalModel", "build_model"]
