"""The MLflow model registry as gray uses it.

`client` (the one MLflow client: URI rules, bounded retries, error mapping), `versions`
(resolve, pin, drift; the tags gray writes on a version), `aliases` (compare-and-set,
promotion, the alias history), `preprocessors` (files, hash, cache, verification),
`binding` (the training side: bind a preprocessor to a version) and `facade` (`Registry`,
the parts behind one object). Serving a version (model, preprocessor, input example) is the
gateway's: gray.gateway.registry_loader.

Importing the package stays cheap: mlflow is imported inside functions.
"""

from gray.controller.registry.aliases import AliasMove
from gray.controller.registry.binding import (
    Bound,
    bind_registered_preprocessor,
    declare_no_preprocessor,
    log_preprocessor,
)
from gray.controller.registry.client import (
    DEFAULT_REGISTRY_URI,
    RegistryClient,
    resolve_registry_uri,
)
from gray.controller.registry.facade import Registry
from gray.controller.registry.preprocessors import VerifiedPreprocessor
from gray.controller.registry.versions import (
    NO_PREPROCESSOR,
    TAG_PREPROCESSOR_BINDING,
    TAG_PREPROCESSOR_SHA256,
    ModelVersionInfo,
    PinnedPair,
    RolloutMark,
)

__all__ = [
    "DEFAULT_REGISTRY_URI",
    "NO_PREPROCESSOR",
    "TAG_PREPROCESSOR_BINDING",
    "TAG_PREPROCESSOR_SHA256",
    "AliasMove",
    "Bound",
    "ModelVersionInfo",
    "PinnedPair",
    "Registry",
    "RegistryClient",
    "RolloutMark",
    "VerifiedPreprocessor",
    "bind_registered_preprocessor",
    "declare_no_preprocessor",
    "log_preprocessor",
    "resolve_registry_uri",
]
