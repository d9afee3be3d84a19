# Import from each host's configuration so the hosts fetch what CI built and pushed to the cache (with
# NixosDeployment `useSubstitutes: true`) instead of receiving every path over SSH. The URL and public key are your
# Cachix cache's (app.cachix.org → the cache → "Public key"); paths not in the cache yet still go over SSH.
{ ... }:
{
  nix.settings = {
    extra-substituters = [ "https://my-fleet.cachix.org" ];
    extra-trusted-public-keys = [ "my-fleet.cachix.org-1:REPLACE-WITH-THE-CACHE-PUBLIC-KEY" ];
  };
}
