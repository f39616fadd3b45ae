"""The model registry the refresh promotes through: MLflow's, alias ``champion`` = the serving model.

A version's source is a model folder under the state dir (copied there before registration, so a run
folder can be deleted without breaking the registry). Only the promotion step moves the alias, and only
after the copy is complete, so a killed or rejected run never changes what ``champion`` points to. With the
state dir on an object store, ``publish`` names the copy by its URI there (the local folder is a mirror's).
"""

from __future__ import annotations

import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

CHAMPION = "champion"


@dataclass
class ModelVersion:
    version: str
    source: str
    tags: dict


class Registry:
    def __init__(self, uri: str, name: str, publish: Callable[[Path], str] | None = None):
        if uri.startswith("file:"):
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3: explicit opt-in to the file store
        from mlflow import MlflowClient

        self.uri, self.name = uri, name
        self.publish = publish or str
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def _ensure(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            self.client.create_registered_model(self.name, description="Strata two-tower retriever")

    def champion(self) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        try:
            v = self.client.get_model_version_by_alias(self.name, CHAMPION)
        except MlflowException:
            return None
        return ModelVersion(str(v.version), v.source, dict(v.tags))

    def register(self, model_dir: str | Path, store: Path, tags: dict[str, str]) -> ModelVersion:
        """Copy ``model_dir`` into ``store`` (atomically) and register it as a new version (no alias)."""
        self._ensure()
        store.mkdir(parents=True, exist_ok=True)
        final = store / f"model-{uuid.uuid4().hex[:12]}"
        tmp = final.with_name(final.name + ".tmp")
        shutil.copytree(model_dir, tmp)
        tmp.rename(final)
        source = self.publish(final)
        v = self.client.create_model_version(self.name, source=source, tags={k: str(x) for k, x in tags.items()})
        return ModelVersion(str(v.version), source, dict(v.tags))

    def promote(self, version: str) -> None:
        self.client.set_registered_model_alias(self.name, CHAMPION, version)

    def versions(self) -> list[ModelVersion]:
        self._ensure()
        out = [ModelVersion(str(v.version), v.source, dict(v.tags))
               for v in self.client.search_model_versions(f"name = '{self.name}'")]
        return sorted(out, key=lambda v: int(v.version))
