//! The official `openai` Python SDK and LangChain's ChatOpenAI, unchanged, against a real
//! gardefou process (tests/e2e/clients.py). In CI the packages are installed by `.ci/run`; a
//! missing package fails the test there, and is reported and skipped only outside CI.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python_has_clients() -> bool {
    Command::new("python3")
        .args(["-c", "import openai, langchain_openai"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn official_openai_sdk_and_langchain_work_unchanged() {
    if !python_has_clients() {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have the openai and langchain-openai Python packages (pip install -r tests/e2e/requirements.txt)"
        );
        eprintln!("skipped: pip install -r tests/e2e/requirements.txt to run the real-client tests");
        return;
    }
    let root = repo_root();
    let dir = std::env::temp_dir().join(format!("gardefou-clients-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_gardefou"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(root.join("tests/e2e/gardefou-e2e.toml"))
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_owned();
    let out = Command::new("python3").arg(root.join("tests/e2e/clients.py")).arg(&base).output().unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "clients.py failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
