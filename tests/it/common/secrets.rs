//! A password that must never show: tests put [`SENTINEL`] into URLs and
//! search every output for it.

/// A password no output may contain, in any form.
pub const SENTINEL: &str = "S3ntinel-pw-xyz";

/// Runs `cmd` and fails the test if any of `secrets` shows in its stdout
/// or its stderr (`what` names the case). Returns the exit code and
/// stdout followed by stderr.
pub fn output_hiding(
    mut cmd: assert_cmd::Command,
    secrets: &[&str],
    what: &str,
) -> (Option<i32>, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let both = format!("{stdout}{stderr}");
    for secret in secrets {
        for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
            assert!(
                !text.contains(secret),
                "{what}: `{secret}` shows in {name}:\n{text}"
            );
        }
        assert!(
            !both.contains(secret),
            "{what}: `{secret}` shows in the output:\n{both}"
        );
    }
    (out.status.code(), both)
}
