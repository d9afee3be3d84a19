// Public API of the cdktf-nixos construct library and deploy engine.
export {};
