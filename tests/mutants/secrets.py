"""Secrets never shown (tests/test_secrets.py)."""

from tests.mutation_check import Mutation

SECRETS = "tests/test_secrets.py"

MUTATIONS = [
    Mutation(
        name="a model's parameters show their api_key",
        path="config_schema/_secrets.py",
        old="        return repr(redacted(dict(self)))\n",
        new="        return dict.__repr__(self)\n",
        tests=(f"{SECRETS}::test_no_repr_or_str_of_the_config_models_or_providers_shows_a_secret",),
        expect="the API key shows in repr(config)",
    ),
    Mutation(
        name="a secret's value under an innocent key is shown",
        path="config_schema/_secrets.py",
        old="            value = value.replace(secret, REDACTED)\n",
        new="            pass\n",
        tests=(f"{SECRETS}::test_no_repr_or_str_of_the_config_models_or_providers_shows_a_secret",),
    ),
    Mutation(
        name="the provider's repr shows the URL's password",
        path="stages/generation/_openai.py",
        old="url={redacted(self._url)!r}",
        new="url={self._url!r}",
        tests=(f"{SECRETS}::test_an_error_about_an_unreachable_provider_shows_no_password",),
        expect="the URL's password shows in repr(provider)",
    ),
    Mutation(
        name="provider errors show the URL's password",
        path="stages/generation/_openai.py",
        old='        self._where = f"POST {redacted(self._url)}"',
        new='        self._where = f"POST {self._url}"',
        tests=(f"{SECRETS}::test_an_error_about_an_unreachable_provider_shows_no_password",),
        expect="the URL's password shows in the error chunk",
    ),
]
