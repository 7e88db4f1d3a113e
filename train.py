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
    parser.add_argument("--feedback-role", action="append", choices=["user", "admin"],
                        metavar="ROLE", help="train only on feedback given by this role "
                        "(user or admin; may be given more than once)")
    parser.add_argument("--feedback-user", action="append", metavar="NAME",
                        help="train only on feedback given by this user (may be given more "
                             "than once)")
    parser.add_argument("--feedback-since", metavar="DATE",
                        help="train only on feedback last changed on or after this UTC date "
                             "or date-time (YYYY-MM-DD[THH:MM])")
    parser.add_argument("--feedback-until", metavar="DATE",
                        help="... and before this one (a bare date includes that whole day)")
    parser.add_argument("--no-corpora", action="store_true",
                        help="train only on --data files and feedback, not the built-in corpora")
    parser.add_argument("--output", metavar="PATH",
                        help="where to write the model (default: $MODEL_PATH or ./model.pkl)")
    parser.add_argument("--seed", type=int, default=13, help="random seed (default 13)")
    return parser.parse_args(argv)


def read_feedback_rows(args):
    """Feedback from the database the service uses (DATABASE_URL or the
    instance folder's SQLite file), never the rejected rows, narrowed by the
    --feedback-* options."""
    from app import create_app
    from sentiment.training import parse_when, read_feedback

    since = parse_when(args.feedback_since) if args.feedback_since else None
    until = parse_when(args.feedback_until, end=True) if args.feedback_until else None
    app = create_app({"BOOTSTRAP_CREDENTIALS": False, "LOAD_MODEL": False})
    with app.app_context():
        rows = read_feedback(roles=args.feedback_role, users=args.feedback_user,
                             since=since, until=until,
                             report=lambda line: print(line, flush=True))
    where = app.config["SQLALCHEMY_DATABASE_URI"].split("@")[-1]
    print(f"feedback from {where}: {len(rows)} corrected texts", flush=True)
    return rows


def main(argv=None):
    args = parse_args(argv)
    from sqlalchemy.exc import SQLAlchemyError

    from sentiment.config import DEFAULT_MODEL_PATH
    from sentiment.training import TrainingError, train

    output = os.path.abspath(args.output or os.environ.get("MODEL_PATH") or DEFAULT_MODEL_PATH)
    try:
        if os.path.isdir(output):
            raise TrainingError(f"--output {output} is a folder; give a file path")
        if not os.path.isdir(os.path.dirname(output)):
            raise TrainingError(f"the folder of --output {output} does not exist")
        feedback = []
        if not args.no_feedback:
            try:
                feedback = read_feedback_rows(args)
            except SQLAlchemyError as exc:
                first_line = str(exc).splitlines()[0]
                raise TrainingError(f"cannot read feedback from the database ({first_line}); "
                                    "use --no-feedback to train without it") from None
        train(output, seed=args.seed, extra_data=args.data,
              use_corpora=not args.no_corpora, feedback_rows=feedback)
    except TrainingError as exc:
        print(f"error: {exc}; {output} was left as it was", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
