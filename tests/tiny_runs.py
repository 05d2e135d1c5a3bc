"""What several test modules share: the overrides of seconds-long runs, and the check of a
command's one-line user error.

Tiny runs that resolve their config through ``load_config`` start from the ``tiny`` preset
(``quantnas/config/presets/tiny.yaml``); the override lists here only set what differs from it.
The CLI lists (``CLI_*``, ``HOSTILE``) are appended after positional arguments, where argparse
takes no ``--preset``, so they spell the run out over the ``default`` preset the CLI uses.
"""

#: No TensorBoard, no progress bars, one intra-op thread: on 2 shared cores, small convs are
#: ~100x slower with 2 threads when another process competes for the CPU.
QUIET = ["tensorboard=false", "progress=false", "threads=1"]

#: A whole ``quantnas run`` (search, then training) in seconds.
RUN = [
    "arch.c_fixed=12",
    "data.lr_crop=12",
    "data.repeat=1",
    "data.val_crop=64",
    "search.batch_size=4",
    "search.epochs=3",
    "search.warm_up=1",
    "search.steps_per_epoch=2",
    "search.c_fixed=0",
    "search.lr_crop=0",
    "search.alpha_lr=0.05",
    "search.target_bitops=0",
    "search.select=argmax",  # the default preset races finalists; tests/test_finalists does
    "train.batch_size=4",
    "train.epochs=1",
    "train.steps_per_epoch=2",
    *QUIET,
]

#: Training only, a few steps more, so the trained residual is not zero (export, upscale).
TRAIN = [
    "arch.c_fixed=12",
    "arch.output_scale=false",
    "data.lr_crop=12",
    "data.repeat=2",
    "data.val_crop=64",
    "train.batch_size=4",
    "train.epochs=1",
    "train.steps_per_epoch=6",
    *QUIET,
]

#: The 12-channel network on 12x12 LR crops, one pass over the photos, at the CLI's default
#: preset (``quantnas train``/``search`` of tests/test_cli.py).
_CLI_BASE = ["arch.c_fixed=12", "data.lr_crop=12", "data.repeat=1", "data.val_crop=64"]
CLI_TRAIN = [
    *_CLI_BASE,
    "train.batch_size=4",
    "train.epochs=1",
    "train.steps_per_epoch=0",
    *QUIET,
]
CLI_SEARCH = [
    *_CLI_BASE,
    "search.batch_size=4",
    "search.epochs=2",
    "search.warm_up=1",
    "search.c_fixed=0",
    "search.lr_crop=0",
    "search.steps_per_epoch=0",
    "search.target_bitops=0",
    "search.select=argmax",
    *QUIET,
]

#: Search and training at the CLI's default preset, 8 channels, one step per epoch: the
#: runs the hostile-input tests break (tests/test_hostile_inputs.py, tests/test_rundir.py).
HOSTILE = [
    "arch.c_fixed=8",
    "data.lr_crop=8",
    "data.repeat=1",
    "data.val_crop=32",
    "search.batch_size=2",
    "search.epochs=2",
    "search.warm_up=1",
    "search.steps_per_epoch=1",
    "search.target_bitops=0",
    "search.select=argmax",
    "train.batch_size=2",
    "train.epochs=2",
    "train.steps_per_epoch=1",
    *QUIET,
]

#: Over the ``tiny`` preset: a 2-cell supernet searched for 3 epochs of 3 steps
#: (tests/test_search.py; the same config as its former list over the library defaults).
SEARCH = [
    "arch.body_cells=2",
    "search.epochs=3",
    "search.steps_per_epoch=3",
    "search.alpha_optim.lr=0.05",
    "threads=1",
]

#: Over the ``tiny`` preset: a 2-cell network trained 2 epochs of 2 steps
#: (tests/test_train.py; the same config as its former list over the library defaults).
TRAIN_STEPS = [
    "arch.body_cells=2",
    "data.repeat=2",
    "train.epochs=2",
    "train.steps_per_epoch=2",
    "threads=1",
]

#: Over the ``tiny`` preset: 2 data-parallel processes, 3 steps an epoch, 48x48 validation
#: crops (tests/test_distributed.py; the same search and training configs as before).
_DIST = ["arch.body_cells=2", "data.repeat=4", "data.val_crop=48", "threads=1"]
DIST_SEARCH = [*_DIST, "search.steps_per_epoch=3"]
DIST_TRAIN = [
    *_DIST,
    "arch.output_scale=false",
    "train.epochs=2",
    "train.steps_per_epoch=3",
]


def one_error(code: int, capsys, *fragments: str, alone: bool = False) -> str:
    """Exit 2 and exactly one ``error:`` line (the last line, holding every fragment), no
    traceback; with ``alone``, nothing else on stderr. Returns the line.
    """
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert "Traceback" not in err
    if alone:
        assert err.strip().splitlines() == errors, err
    for f in fragments:
        assert f in errors[0], (f, errors[0])
    return errors[0]
