"""Users in the database: hashing, lookup, and the `flask users ...` commands."""
import click
from flask import current_app
from flask.cli import AppGroup
from werkzeug.security import generate_password_hash

from .db import ROLES, User, db

MIN_PASSWORD_LENGTH = 8
MAX_USERNAME_LENGTH = 150


def hash_password(password):
    """A salted hash with the configured method (scrypt by default)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def usable_name(username):
    """A name that can be looked up safely: PostgreSQL refuses NUL in text,
    and nothing longer than the column can exist."""
    return (isinstance(username, str) and 0 < len(username) <= MAX_USERNAME_LENGTH
            and "\x00" not in username)


def find_user(username):
    """The user row, or None (also for a name that cannot exist)."""
    if not usable_name(username):
        return None
    return db.session.execute(db.select(User).filter_by(username=username)).scalar_one_or_none()


def check_new_name(username):
    if not usable_name(username) or username != username.strip() or ":" in username:
        raise click.BadParameter(
            f"a user name is 1 to {MAX_USERNAME_LENGTH} characters, without a colon "
            "(Basic auth splits on it), NUL, or surrounding blanks", param_hint="USERNAME")
    if username == current_app.config.get("BASIC_AUTH_USERNAME"):
        raise click.BadParameter(
            f"{username!r} is the bootstrap administrator from BASIC_AUTH_USERNAME; "
            "choose another name", param_hint="USERNAME")


def check_new_password(password):
    if len(password) < MIN_PASSWORD_LENGTH:
        raise click.BadParameter(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if "\x00" in password:
        raise click.BadParameter("the password cannot contain NUL")


def existing(username):
    user = find_user(username)
    if user is None:
        raise click.ClickException(f"no user {username!r}")
    return user


def ask_password():
    # Prompted (hidden, twice), never an option: options end up in shell history.
    password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    check_new_password(password)
    return password


# AppGroup runs every command inside an app context.
cli = AppGroup("users", help="Manage the users who may sign in.")


@cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="user", show_default=True)
def create(username, role):
    """Add a user; the password is asked for (twice, hidden)."""
    check_new_name(username)
    if find_user(username) is not None:
        raise click.ClickException(f"user {username!r} already exists")
    password = ask_password()
    db.session.add(User(username=username, role=role, password_hash=hash_password(password)))
    db.session.commit()
    click.echo(f"created {role} {username!r}")


@cli.command("list")
def list_users():
    """Every user with role and state (the bootstrap administrator first)."""
    boot = current_app.config.get("BASIC_AUTH_USERNAME")
    click.echo(f"{boot}\tadmin\tbootstrap (from the environment)")
    for user in db.session.execute(db.select(User).order_by(User.username)).scalars():
        click.echo(f"{user.username}\t{user.role}\t{'active' if user.active else 'disabled'}")


@cli.command("set-password")
@click.argument("username")
def set_password(username):
    """Change a user's password (asked for, twice, hidden)."""
    user = existing(username)
    user.password_hash = hash_password(ask_password())
    db.session.commit()
    click.echo(f"changed the password of {username!r}")


@cli.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
def set_role(username, role):
    """Make a user a `user` or an `admin`."""
    existing(username).role = role
    db.session.commit()
    click.echo(f"{username!r} is now {role}")


@cli.command("disable")
@click.argument("username")
def disable(username):
    """Refuse the user's sign-ins from the next request on; their data stays."""
    existing(username).active = False
    db.session.commit()
    click.echo(f"disabled {username!r}")


@cli.command("enable")
@click.argument("username")
def enable(username):
    """Let a disabled user sign in again."""
    existing(username).active = True
    db.session.commit()
    click.echo(f"enabled {username!r}")


@cli.command("delete")
@click.argument("username")
@click.confirmation_option(prompt="Delete this user? Their predictions and feedback stay.")
def delete(username):
    """Remove a user; predictions and feedback they made are kept."""
    db.session.delete(existing(username))
    db.session.commit()
    click.echo(f"deleted {username!r}")
