# NixOS integration test of examples/fleet (testScript of pkgs.testers.runNixOSTest), run by
#   cdktf-nixos test fleet --script examples/ci/fleet-test.py --on web --on app --arg greeting="hello from CI"
# In the test, web is told app's node name where AWS gives it app's private IP.
start_all()
app.wait_for_unit("multi-user.target")
web.wait_for_unit("multi-user.target")

with subtest("web's upstream is app on the test network"):
    web.succeed("grep -qx 'http://app:8080' /etc/upstream")
    web.succeed("getent hosts app")

with subtest("the greeting reached both hosts"):
    for machine in [web, app]:
        machine.succeed("grep -q 'hello from CI' /etc/motd")
