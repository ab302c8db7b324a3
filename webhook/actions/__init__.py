"""The domain vocabulary shared by every layer: what was changed, on what, by whom."""

from webhook.actions.model import (
    ActionEvent,
    ActorClass,
    ImageChange,
    ResourceChange,
    TargetRef,
)

__all__ = ["ActionEvent", "ActorClass", "ImageChange", "ResourceChange", "TargetRef"]
