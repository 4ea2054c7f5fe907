module.exports = async ({ configVars }, params) => {
  return {
    data: {
      pokemonUrl: `${configVars.pokeApiBaseUrl}/${configVars.pokemonAvatar}`,
      s3ObjectPath: `${configVars.customerName}.png`,
    },
  };
};
