"""The command line: listing, and errors that say what is wrong without a traceback."""

import subprocess
import sys

import pytest

from sysnoise import cli
from sysnoise.cli import main


def test_list_names_every_registered_option(capsys):
    from sysnoise.noises import NOISES

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for noise in NOISES:
        for option in noise.fn.options():
            assert option in out
    assert "efficientnet_lite0" in out
    from sysnoise.zoo.datasets import DATASETS

    assert all(f"    {name} " in out for name in DATASETS.names())


@pytest.mark.parametrize(
    "argv, message",
    [
        (["run", "--model", "torchvision:resnet18", "--data", "."], "needs --weights"),
        (
            ["run", "--model", "torchvision:resnet18", "--weights", "missing.pth", "--data", "."],
            "weights file not found",
        ),
        (["run", "--model", "efficientnet_lite9", "--data", "."], "unknown model 'efficientnet_lite9'"),
        (
            ["run", "--model", "efficientnet_lite0", "--data", "{tmp}", "--noise", "resise"],
            "unknown noise 'resise'. Did you mean resize",
        ),
        (
            ["run", "--model", "efficientnet_lite0", "--data", "{tmp}", "--noise", "resize=cubic"],
            "'cubic' is not an option of noise 'resize'; did you mean pillow-bicubic, opencv-bicubic, torchvision-bicubic?",
        ),
        (["run", "--model", "efficientnet_lite0", "--data", "{tmp}/empty"], "no images found"),
    ],
)
def test_bad_input_gives_a_clear_error(argv, message, tmp_path, capsys, gradient_images):
    (tmp_path / "empty").mkdir()
    argv = [a.replace("{tmp}", str(gradient_images[0].parent) if a == "{tmp}" else str(tmp_path)) for a in argv]
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sysnoise: error:") and message in err
    assert "Traceback" not in err


def test_weights_that_are_a_pickled_object_are_refused(tmp_path, capsys, gradient_images):
    import torch

    bad = tmp_path / "model.pth"
    torch.save(torch.nn.Linear(2, 2), bad)  # a whole pickled module, not a state_dict
    data = str(gradient_images[0].parent)  # the data is checked first: give readable images
    assert main(["run", "--model", "torchvision:resnet18", "--weights", str(bad), "--data", data]) == 2
    assert "weights_only=True" in capsys.readouterr().err


def test_help_for_every_command():
    for command in ("run", "demo", "list"):
        done = subprocess.run([sys.executable, "-m", "sysnoise", command, "--help"], capture_output=True, text=True)
        assert done.returncode == 0 and "usage: sysnoise" in done.stdout


def test_readme_and_help_name_the_catalogue_defaults():
    """The default noises the README and `sysnoise run --help` list are the catalogue's."""
    from pathlib import Path

    from sysnoise.noises import default_noises

    defaults = ", ".join(default_noises("classification"))
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert f"classification: {defaults})" in readme
    run_help = next(
        a for a in cli.build_parser()._subparsers._group_actions[0].choices["run"]._actions if a.dest == "noises"
    ).help
    assert f"classification: {defaults})" in run_help
