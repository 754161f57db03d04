"""Config system: YAML -> typed dataclasses, key=value overrides, clear errors naming the key."""
from dataclasses import dataclass, field

import pytest

from cardiofm.config import ConfigError, load_config, save_config


@dataclass
class OptimSection:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    layer_decay: float | None = None


@dataclass
class RunConfig:
    name: str = "run"
    steps: int = 10
    precision: str = "auto"
    channels: list[str] = field(default_factory=lambda: ["I", "II"])
    optim: OptimSection = field(default_factory=OptimSection)

    def validate(self):
        if self.steps <= 0:
            raise ConfigError(f"steps: must be positive, got {self.steps}")


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("name: demo\nsteps: 5\noptim:\n  lr: 3e-4\n")
    cfg = load_config(RunConfig, path, ["steps=7", "optim.betas=[0.8, 0.99]", "channels=[V1]", "optim.layer_decay=0.75"])
    assert cfg.name == "demo" and cfg.steps == 7 and cfg.optim.lr == pytest.approx(3e-4)
    assert cfg.optim.betas == (0.8, 0.99) and cfg.channels == ["V1"] and cfg.optim.layer_decay == 0.75
    assert isinstance(cfg.optim, OptimSection)


def test_int_promotes_to_float_and_roundtrip(tmp_path):
    cfg = load_config(RunConfig, None, ["optim.lr=1"])
    assert isinstance(cfg.optim.lr, float)
    save_config(cfg, tmp_path / "saved.yaml")
    assert load_config(RunConfig, tmp_path / "saved.yaml") == cfg


@pytest.mark.parametrize("override, key", [
    ("stepz=3", "stepz"), ("optim.lrr=1", "optim.lrr"), ("steps=abc", "steps"), ("steps=1.5", "steps"),
    ("optim.lr=fast", "optim.lr"), ("channels=V1", "channels"), ("optim=3", "optim"), ("steps=true", "steps"),
    ("optim.betas=[1, 2, 3]", "optim.betas"), ("steps=-1", "steps"),
])
def test_bad_keys_and_types_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(RunConfig, None, [override])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        load_config(RunConfig, None, ["steps"])
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(RunConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(RunConfig, bad)


@dataclass
class TunedRun:
    optim: OptimSection = field(default_factory=lambda: OptimSection(lr=0.1, layer_decay=0.5))


def test_partial_section_keeps_the_parents_defaults():
    cfg = load_config(TunedRun, None, ["optim.betas=[0.5, 0.6]"])
    assert cfg.optim.lr == 0.1 and cfg.optim.layer_decay == 0.5 and cfg.optim.betas == (0.5, 0.6)
    with pytest.raises(ConfigError, match=r"optim\.nope"):
        load_config(TunedRun, None, ["optim.nope=1"])


def test_flag_overrides_skip_unset_flags_and_win_over_positional():
    from cardiofm.config import flag_overrides

    out = flag_overrides(["steps=3"], {"steps": 0, "name": None, "precision": "", "optim.lr": 0.5})
    assert out == ["steps=3", "steps=0", "optim.lr=0.5"]
    with pytest.raises(ConfigError, match="steps"):
        load_config(RunConfig, None, out)  # steps=0 wins and fails validation


def test_a_bare_no_is_the_word_for_a_literal_field(tmp_path):
    """YAML 1.1 reads `no` as false; for a choice field that lists "no" (train.mixed_precision) it is the word."""
    from cardiofm.engine.config import TrainConfig
    from cardiofm.pretrain.config import PretrainConfig

    cfg = load_config(PretrainConfig, None, ["train.mixed_precision=no"])
    assert isinstance(cfg.train, TrainConfig) and cfg.train.mixed_precision == "no"
    with pytest.raises(ConfigError, match="train.mixed_precision"):
        load_config(PretrainConfig, None, ["train.mixed_precision=fp8"])
