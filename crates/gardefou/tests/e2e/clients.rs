//! The official `openai` Python SDK and LangChain's ChatOpenAI, unchanged, against a real
//! gardefou process (tests/e2e/clients.py). In CI the packages are installed by `.ci/run`; a
//! missing package fails the test there, and is reported and skipped only outside CI.

use crate::harness::run_python_clients;

#[test]
fn official_openai_sdk_and_langchain_work_unchanged() {
    run_python_clients(
        "clients.py",
        "openai, langchain_openai",
        "the openai and langchain-openai Python packages",
    );
}
