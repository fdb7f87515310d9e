"""The model hub (resources/hub.py): a local model path that does not exist is named."""

import pytest

from assets.matrix import ModelSpec
from assets.models.checkpoint import CheckpointError
from resources.hub import ModelHubResource

pytestmark = pytest.mark.unit


def test_model_path_that_does_not_exist(tmp_path):
    with pytest.raises(CheckpointError, match=f"model path {tmp_path / 'nowhere'} does not exist"):
        ModelHubResource(models_dir=str(tmp_path)).fetch(ModelSpec(path=str(tmp_path / "nowhere")))
