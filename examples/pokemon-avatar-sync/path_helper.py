# The Path Helper of the Pokemon Avatar Sync walkthrough, as a Python code step.
#
# Builds the Pokemon API URL and the S3 object key from the instance's config vars, exactly as
# the Rust built-in `path-helper` does. Build it with `weft build path_helper.py`; the manifest
# beside it (`path_helper.plugin.toml`) declares its inputs and the config vars it reads.


def run(context, inputs):
    api_base = inputs.get("api_base", "https://pokeapi.co/api/v2/pokemon")
    return {
        "pokemonUrl": f"{api_base.rstrip('/')}/{required(context, 'pokemonAvatar')}",
        "s3ObjectPath": f"{required(context, 'customerName')}.png",
    }


def required(context, name):
    value = context.config.get(name)
    if value is None:
        raise ValueError(
            f"config var `{name}` has no value for this instance; "
            "set it on the instance, the customer or the workspace"
        )
    return value
