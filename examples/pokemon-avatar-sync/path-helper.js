// The Path Helper of the Pokemon Avatar Sync walkthrough, as a JavaScript code step.
//
// Builds the Pokemon API URL and the S3 object key from the instance's config vars, exactly as
// the Rust built-in `path-helper` does. Build it with `weft build path-helper.js`; the manifest
// beside it (`path-helper.plugin.toml`) declares its inputs and the config vars it reads.
export function run({ config }, { api_base = 'https://pokeapi.co/api/v2/pokemon' }) {
  return {
    pokemonUrl: `${api_base.replace(/\/+$/, '')}/${required(config, 'pokemonAvatar')}`,
    s3ObjectPath: `${required(config, 'customerName')}.png`,
  };
}

function required(config, name) {
  const value = config.get(name);
  if (value === undefined) {
    throw new Error(
      `config var \`${name}\` has no value for this instance; set it on the instance, the customer or the workspace`,
    );
  }
  return value;
}
