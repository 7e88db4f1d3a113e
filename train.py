"""Train the sentiment model: `python train.py --help`."""
import argparse
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description="Train the sentiment model on the built-in corpora, any --data files "
                    "and the feedback stored in the database, then write model.pkl and "
                    "model.json beside it.")
    parser.add_argument("--data", action="append", default=[], metavar="FILE.csv",
                        help="an extra corpus with columns text,label and optional lang "
                             "(may be given more than once)")
    parser.add_argument("--no-feedback", action="store_true",
                        help="do not train on the feedback stored in the database")
    parser.add_argument("--no-corpora", action="store_true",
                        help="train only on --data files and feedback, not the built-in corpora")
    parser.add_argument("--output", metavar="PATH",
                        help="where to write the model (default: $MODEL_PATH or ./model.pkl)")
    parser.add_argument("--seed", type=int, default=13, help="random seed (default 13)")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    from app import create_app
    from sentiment.training import TrainingError, read_feedback, train

    app = create_app({"BOOTSTRAP_CREDENTIALS": False, "LOAD_MODEL": False})
    output = args.output or app.config["MODEL_PATH"]
    if os.path.isdir(output):
        print(f"error: --output {output} is a folder; give a file path", file=sys.stderr)
        return 2
    try:
        feedback = []
        if not args.no_feedback:
            with app.app_context():
                feedback = read_feedback()
            print(f"feedback from {app.config['SQLALCHEMY_DATABASE_URI'].split('@')[-1]}: "
                  f"{len(feedback)} corrected texts", flush=True)
        train(output, seed=args.seed, extra_data=args.data,
              use_corpora=not args.no_corpora, feedback_rows=feedback)
    except TrainingError as exc:
        print(f"error: {exc}; {output} was left as it was", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
