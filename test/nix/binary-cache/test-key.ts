// made by `nix-store --generate-binary-cache-key unit-test-1 secret public` (Nix 2.8): a throwaway key for unit tests
export const SECRET = "unit-test-1:80ewDfN+NcU/2dgQ213RlKlzftfZ5dn93px0Mhrj9A0S2V6/c8bzDGNeCs6BRJn2y5HTHgUjgT51z6O6DUi2pw==";
export const PUBLIC = "unit-test-1:Etlev3PG8wxjXgrOgUSZ9suR0x4FI4E+dc+jug1Itqc=";
