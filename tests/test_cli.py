"""The command line: parsing, and a clear message when data is missing."""

from matbackprop.cli import build_parser, main


def test_subcommands_parse():
    parser = build_parser()
    assert parser.parse_args(["demo", "--epochs", "2"]).epochs == 2
    args = parser.parse_args(["train", "ncuts", "--quick", "--seed", "3"])
    assert args.quick and args.seed == 3 and args.experiment == "ncuts"
    # eval ncuts: the boundary benchmark runs in --workers processes, one per usable core by default
    from matbackprop.experiments.bsds_ncuts.evaluate import usable_cores

    args = parser.parse_args(["eval", "ncuts"])
    assert args.experiment == "ncuts" and args.workers == usable_cores() >= 1 and args.threads == 1
    assert callable(args.func)
    args = parser.parse_args(["eval", "ncuts", "--workers", "3", "--threads", "2"])
    assert args.workers == 3 and args.threads == 2


def test_missing_data_gives_a_clear_message(tmp_path, capsys):
    code = main(["eval", "ncuts", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "run")])
    assert code == 2
    err = capsys.readouterr().err
    assert "BSDS500 not found" in err and "nowhere" in err
