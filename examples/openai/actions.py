"""The demo's rail: block any window that holds something shaped like an API key."""

import re

from railstream import action

# sk- followed by key characters: the shape of OpenAI-style secret keys.
SECRET = re.compile(r"\bsk-[A-Za-z0-9-]{8,}")


@action()
def check_no_secrets(bot_message: str) -> bool:
    """True (allowed) unless the window's text contains a secret key."""
    return SECRET.search(bot_message) is None
