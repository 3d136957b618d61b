"""Config files and overrides: what is accepted, and the exact one-line error for what is not."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from tfsoftmax.config import Config, to_toml
from tfsoftmax.config.loader import from_dict, load_config, override
from tfsoftmax.errors import TfsoftmaxError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.toml"
    path.write_text(text)
    return path


def test_defaults_are_d2l_reference_values(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""))
    assert (
        config.data.dataset,
        config.data.batch_size,
        config.train.optimizer,
        config.train.lr,
        config.train.epochs,
        config.model.init_stddev,
    ) == ("fashion_mnist", 256, "sgd", 0.1, 10, 0.01)
    assert config.data.validation_fraction == 0.1
    assert config.logging.root == "logs"


def test_reference_experiment_states_d2l_values() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "experiments" / "fashion_mnist.toml")
    assert config.data.batch_size == 256 and config.train.lr == 0.1 and config.train.epochs == 10
    assert config.train.optimizer == "sgd" and config.model.init_stddev == 0.01
    assert config.logging.experiment == "fashion_mnist"


def test_file_may_set_a_few_keys_and_int_is_a_fine_float(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[train]\nlr = 1\n"))
    assert config.train.lr == 1.0 and isinstance(config.train.lr, float)
    assert config.train.epochs == 10


def test_config_is_frozen(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""))
    with pytest.raises(AttributeError):
        config.train.lr = 0.5  # type: ignore[misc]


def test_saved_toml_reads_back_equal(tmp_path: Path) -> None:
    config = load_config(
        _write(
            tmp_path,
            '[train]\noptimizer = "adam"\nlr = 3e-4\n[sweep.space]\n'
            '"train.lr" = { min = 1e-3, max = 1.0, sampling = "log" }\n'
            '"data.batch_size" = { values = [32, 64] }\n',
        )
    )
    assert from_dict(tomllib.loads(to_toml(config, "header")), "saved") == config


def test_overrides_parse_toml_values_and_bare_words(tmp_path: Path) -> None:
    config = load_config(
        _write(tmp_path, ""), ["train.lr=0.3", "data.batch_size=128", "train.optimizer=adam", 'logging.run_name="a-b"']
    )
    assert (config.train.lr, config.data.batch_size, config.train.optimizer, config.logging.run_name) == (
        0.3,
        128,
        "adam",
        "a-b",
    )


def test_override_from_python(tmp_path: Path) -> None:
    config = override(load_config(_write(tmp_path, "")), {"train.lr": 0.2, "train.optimizer": "momentum"})
    assert config.train.lr == 0.2 and config.train.optimizer == "momentum"
    with pytest.raises(TfsoftmaxError, match=r"train.epochs: got 0; allowed: an integer >= 1"):
        override(config, {"train.epochs": 0})


def test_experiment_named_after_file(tmp_path: Path) -> None:
    path = tmp_path / "my lr test.toml"
    path.write_text("")
    assert load_config(path).logging.experiment == "my_lr_test"


BAD_FILES = [
    ("[train]\nlr = -0.1\n", "train.lr: got -0.1; allowed: a finite number > 0"),
    ("[train]\nlr = nan\n", "train.lr: got nan; allowed: a finite number > 0"),
    ("[train]\nlr = inf\n", "train.lr: got inf; allowed: a finite number > 0"),
    ('[train]\nlr = "0.1"\n', 'train.lr: expected a number, got "0.1" (str); allowed: a finite number > 0'),
    ("[train]\nepochs = 2.5\n", "train.epochs: expected an integer, got 2.5 (float); allowed: an integer >= 1"),
    ("[train]\nepochs = true\n", "train.epochs: expected an integer, got true (bool); allowed: an integer >= 1"),
    ("[train]\nepochs = 0\n", "train.epochs: got 0; allowed: an integer >= 1"),
    ("[data]\nbatch_size = 0\n", "data.batch_size: got 0; allowed: an integer >= 1"),
    ('[data]\nbatch_size = "256"\n', 'data.batch_size: expected an integer, got "256" (str)'),
    ("[data]\nvalidation_fraction = 1.0\n", "data.validation_fraction: got 1.0; allowed: a number in [0, 1)"),
    ("[data]\nvalidation_fraction = -0.1\n", "data.validation_fraction: got -0.1"),
    ('[train]\noptimizer = "rmsprop"\n', 'train.optimizer: got "rmsprop"; allowed: sgd | momentum | adam'),
    ('[data]\ndataset = "Fashion MNIST"\n', 'data.dataset: got "Fashion MNIST"; allowed: a TFDS dataset name'),
    ("[train]\nlrr = 0.1\n", "train.lrr: unknown key (did you mean 'lr'?); allowed: optimizer, lr,"),
    ("[trian]\nlr = 0.1\n", "[trian]: unknown section (did you mean 'train'?); allowed: data, model, train"),
    ("[train\nlr = 0.1\n", "invalid TOML: "),
    ("lr = 0.1\n", "[lr]: unknown section; allowed: data, model, train, logging, sweep"),
    ('[model]\nkind = "torch"\n', 'model.kind: got "torch"; allowed: keras | scratch'),
    ('[train]\nengine = "xla"\n', 'train.engine: got "xla"; allowed: auto | packed | fit'),
]


@pytest.mark.parametrize("text,message", BAD_FILES)
def test_bad_file_names_file_key_and_allowed(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(TfsoftmaxError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert info.value.exit_code == 2


BAD_OVERRIDES = [
    ("train.lr=abc", '--set train.lr=abc: train.lr: expected a number, got "abc" (str)'),
    ("train.lr=0", "--set train.lr=0: train.lr: got 0.0; allowed: a finite number > 0"),
    ("data.batch_size=1.5", "--set data.batch_size=1.5: data.batch_size: expected an integer, got 1.5"),
    ("lr=0.1", "--set lr=0.1: expected section.key=value, e.g. train.lr=0.3"),
    ("train.lr", "--set train.lr: expected section.key=value"),
    ("train.lr.x=1", "--set train.lr.x=1: 'train.lr.x' is not section.key"),
    ("model.init_std=0.1", "--set model.init_std=0.1: model.init_std: unknown key (did you mean 'init_stddev'?)"),
]


@pytest.mark.parametrize("text,message", BAD_OVERRIDES)
def test_bad_override_is_named_exactly(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TfsoftmaxError) as info:
        load_config(_write(tmp_path, ""), [text])
    assert str(info.value).startswith(message)
    assert info.value.exit_code == 2


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TfsoftmaxError, match=r"nope.toml: no such config file$") as info:
        load_config(tmp_path / "nope.toml")
    assert info.value.exit_code == 2


def test_directory_and_binary_file(tmp_path: Path) -> None:
    with pytest.raises(TfsoftmaxError, match="is a directory"):
        load_config(tmp_path)
    path = tmp_path / "bin.toml"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(TfsoftmaxError, match="cannot read config file"):
        load_config(path)


def test_default_config_equals_empty_file(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""))
    assert config == Config(logging=config.logging)


def test_file_error_is_blamed_on_the_file_not_an_unrelated_override(tmp_path: Path) -> None:
    path = _write(tmp_path, "[train]\nlr = -1\n")
    with pytest.raises(TfsoftmaxError, match=rf"^{path}: train.lr: got -1.0"):
        load_config(path, ["train.epochs=5"])


def test_naive_loss_belongs_to_the_scratch_model(tmp_path: Path) -> None:
    with pytest.raises(TfsoftmaxError, match='model.loss: "naive" is the from-scratch model\'s lesson'):
        load_config(_write(tmp_path, '[model]\nloss = "naive"\n'))
    assert load_config(_write(tmp_path, '[model]\nkind = "scratch"\nloss = "naive"\n')).model.loss == "naive"


def test_the_scratch_model_trains_through_fit_only(tmp_path: Path) -> None:
    with pytest.raises(
        TfsoftmaxError, match='train.engine: "packed" trains the Keras model; .* allowed: "auto" or "fit"'
    ):
        load_config(_write(tmp_path, '[model]\nkind = "scratch"\n[train]\nengine = "packed"\n'))
    for engine in ("auto", "fit"):
        assert load_config(_write(tmp_path, f'[model]\nkind = "scratch"\n[train]\nengine = "{engine}"\n'))


def test_strings_with_quotes_and_backslashes_round_trip(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, ""), ["logging.root='we\"ird\\path'"])
    assert from_dict(tomllib.loads(to_toml(config)), "saved") == config


# Found by the property test (test_config_properties.py): each raised something other than a config error,
# printed on more than one line, or saved a config that could not be read back.
ODD_FILES = [
    ("[train]\nlr = " + "9" * 400 + "\n", "train.lr: expected an integer in TOML's 64-bit range, got 999"),
    ("[train]\nseed = 18446744073709551616\n", "train.seed: expected an integer in TOML's 64-bit range"),
    ("[train]\nseed = 4294967296\n", "train.seed: got 4294967296; allowed: an integer in [0, 4294967295]"),
    ("[train]\nseed = 0x" + "f" * 4000 + "\n", "train.seed: expected an integer in TOML's 64-bit range, got 0xfff"),
    ("[train]\nseed = " + "9" * 5000 + "\n", "invalid TOML: integer over 4300 digits"),
    ("[train]\nlr = " + "[" * 1000 + "]" * 1000 + "\n", "invalid TOML: arrays or inline tables nested too deeply"),
    ("[data]\ndata_dir = " + "[" * 350 + "]" * 350 + "\n", "data.data_dir: expected a string, got [[[[[[[[...]]"),
    ('[data]\ndataset = "mnist\\n"\n', 'data.dataset: got "mnist\\n"; allowed: a TFDS dataset name'),
    ('[logging]\nrun_name = "a\\n"\n', 'logging.run_name: got "a\\n"; allowed: letters, digits'),
    ('["a\\u2028b"]\n', "[a\\u2028b]: unknown section"),
    ('[data]\n"a\\u001eb" = 1\n', "data.a\\x1eb: unknown key"),
]


@pytest.mark.parametrize(
    "text,message",
    ODD_FILES,
    ids=[
        "huge-float",
        "int-over-64-bit",
        "seed-over-32-bit",
        "long-hex",
        "long-int",
        "too-deep-array",
        "deep-array",
        "dataset-newline",
        "run-name-newline",
        "line-separator",
        "control-char-key",
    ],
)
def test_odd_file_is_a_one_line_config_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(TfsoftmaxError) as info:
        load_config(_write(tmp_path, text))
    assert message in str(info.value)
    assert len(str(info.value).splitlines()) == 1
    assert info.value.exit_code == 2


def test_characters_beyond_the_basic_plane_round_trip(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, '[data]\ndata_dir = "\U0001f600"\n'))
    assert load_config(_write(tmp_path, to_toml(config, "saved by\x01a test\nsecond line"))) == config
    assert override(config, {"data.data_dir": "\U0001f601"}).data.data_dir == "\U0001f601"


def test_override_with_undecodable_bytes_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(TfsoftmaxError, match=r'data.data_dir: got "\\udcff", which is not Unicode text'):
        load_config(_write(tmp_path, ""), ["data.data_dir=\udcff"])


def test_override_value_is_one_toml_value_or_taken_whole(tmp_path: Path) -> None:
    with pytest.raises(TfsoftmaxError, match=r'train.lr: expected a number, got "0.3\\nx = 1" \(str\)'):
        load_config(_write(tmp_path, ""), ["train.lr=0.3\nx = 1"])
    assert load_config(_write(tmp_path, ""), ["data.data_dir=/d\nx = 1"]).data.data_dir == "/d\nx = 1"


def test_experiment_named_after_file_starts_with_a_letter_or_digit(tmp_path: Path) -> None:
    (tmp_path / "_draft.toml").write_text("")
    assert load_config(tmp_path / "_draft.toml").logging.experiment == "draft"
    (tmp_path / "实验.toml").write_text("")
    with pytest.raises(TfsoftmaxError, match="no letter or digit to name the experiment after"):
        load_config(tmp_path / "实验.toml")
    (tmp_path / "实验.toml").write_text('[logging]\nexperiment = "shiyan"\n')
    assert load_config(tmp_path / "实验.toml").logging.experiment == "shiyan"


def test_a_sweep_whose_trials_could_draw_an_invalid_config_is_refused_before_it_starts(tmp_path: Path) -> None:
    from tfsoftmax.config.loader import require_space

    config = load_config(
        _write(
            tmp_path, '[train]\noptimizer = "adam"\n[sweep.space]\n"model.kind" = { values = ["keras", "scratch"] }\n'
        )
    )
    with pytest.raises(
        TfsoftmaxError,
        match=r'exp.toml: \[sweep.space\]: a trial drawing model.kind = "scratch" '
        r"would be an invalid config: model.kind \"scratch\" trains",
    ) as info:
        require_space(config, str(tmp_path / "exp.toml"))
    assert info.value.exit_code == 2
    together = load_config(
        _write(
            tmp_path,
            '[sweep.space]\n"model.kind" = { values = ["keras", "scratch"] }\n'
            '"model.loss" = { values = ["stable", "naive"] }\n',
        )
    )
    with pytest.raises(TfsoftmaxError, match=r'drawing model.kind = "keras", model.loss = "naive"'):
        require_space(together, "exp.toml")


def test_hyperband_sets_the_epochs_itself(tmp_path: Path) -> None:
    with pytest.raises(TfsoftmaxError, match=r'sweep.space."train.epochs": Hyperband sets each round\'s epochs'):
        load_config(
            _write(tmp_path, '[sweep]\nalgorithm = "hyperband"\n[sweep.space]\n"train.epochs" = { values = [2, 4] }\n')
        )


def test_a_config_saved_before_not_set_was_none_still_loads(tmp_path: Path) -> None:
    old = load_config(
        _write(tmp_path, '[data]\ndata_dir = ""\nmanual_dir = ""\n[logging]\nrun_name = ""\n[sweep]\nepochs = 0\n')
    )
    assert (old.data.data_dir, old.data.manual_dir, old.logging.run_name, old.sweep.epochs) == (None, None, None, None)
    assert old.trial_epochs == old.train.epochs
