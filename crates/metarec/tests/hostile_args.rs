//! The command line under hostile input: numbers out of range, not numbers at all, and a reader
//! that stops reading. Each must end in a clean error or a quiet exit, never in a panic.

mod common;

use common::{data_dir, stderr};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs each command line in `cases` (split on spaces) and checks that it is refused as a usage
/// error (exit status 2) or a clean error (1), without a panic or a backtrace, with a message
/// that names the option given as the case's second part. Returns the failures, one line each.
fn refuse_all(cases: &[(&str, &str)]) -> Vec<String> {
    let tmp = tempfile::tempdir().unwrap();
    // A data directory inside a regular file cannot be created or read, so a command whose
    // arguments were wrongly accepted fails at once on its data instead of starting long work;
    // the message then lacks the option's name, and the case fails.
    let file = tmp.path().join("not-a-directory");
    std::fs::write(&file, "").unwrap();
    let data = file.join("data");
    let mut failures = Vec::new();
    for &(line, option) in cases {
        let out = metarec_without_secrets(tmp.path(), &data, line);
        let err = stderr(&out);
        let code = out.status.code();
        let problem = if !matches!(code, Some(1 | 2)) {
            Some(format!("exit status {:?}", out.status))
        } else if err.contains("panicked") || err.contains("backtrace") {
            Some("a panic".to_owned())
        } else if !err.contains(option) {
            Some(format!("no mention of `{option}`"))
        } else {
            None
        };
        if let Some(problem) = problem {
            failures.push(format!("`metarec {line}`: {problem}: {}", err.trim()));
        }
    }
    failures
}

/// Runs `metarec --data-dir DATA LINE...` in `cwd`, without the serving secrets in the
/// environment, so that a `serve` whose numbers were wrongly accepted stops at its missing keys
/// rather than starting a server.
fn metarec_without_secrets(cwd: &Path, data: &Path, line: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_metarec"))
        .current_dir(cwd)
        .arg("--data-dir")
        .arg(data)
        .args(line.split(' '))
        .env_remove("METAREC_API_KEYS")
        .env_remove("METAREC_PSEUDONYM_KEY")
        .output()
        .expect("the metarec binary runs")
}

#[test]
fn out_of_range_numbers_are_refused_with_the_option_named() {
    let cases = [
        ("demo --seeds 0", "--seeds"),
        ("demo --users=-1", "--users"),
        ("demo --seeds 1e20", "--seeds"),
        ("demo --meta-users 18446744073709551616", "--meta-users"),
        (
            "demo --calibration-users 99999999999",
            "--calibration-users",
        ),
        ("sim calibrate --users 0", "--users"),
        ("sim calibrate --users 1e308", "--users"),
        ("arena --users 0", "--users"),
        ("arena --seeds 100000", "--seeds"),
        ("arena --horizon 0", "--horizon"),
        ("arena --threads 4096", "--threads"),
        ("train --out m --iterations 0", "--iterations"),
        ("train --out m --batch 0", "--batch"),
        ("train --out m --lr nan", "--lr"),
        ("train --out m --lr=-1", "--lr"),
        ("train --out m --lr inf", "--lr"),
        ("train --out m --gamma 1.5", "--gamma"),
        ("train --out m --gamma NaN", "--gamma"),
        ("train --out m --click 1e308", "--click"),
        ("train --out m --purchase=-inf", "--purchase"),
        ("train --out m --revenue nan", "--revenue"),
        ("train --out m --entropy=-1", "--entropy"),
        ("train --out m --hidden 0", "--hidden"),
        ("train --out m --embed 100000", "--embed"),
        ("train --out m --temperature 0", "--temperature"),
        ("train --out m --temperature 1e-300", "--temperature"),
        ("train --out m --checkpoint-every 0", "--checkpoint-every"),
        ("train --out m --seed=-1", "--seed"),
        ("train --out m --seed 18446744073709551616", "--seed"),
        ("meta-train --model m --users 0", "--users"),
        ("meta-train --model m --steps 0", "--steps"),
        ("meta-train --model m --reptile-rate 2", "--reptile-rate"),
        ("meta-train --model m --reptile-rate nan", "--reptile-rate"),
        ("meta-train --model m --grid 0.1,nan", "--grid"),
        ("meta-train --model m --grid=-1", "--grid"),
        ("meta-train --model m --grid 0.3,inf", "--grid"),
        (
            "meta-train --model m --adjuster gradient --grid 1e308",
            "--grid",
        ),
        ("new-items --holdout-days 0", "--holdout-days"),
        ("new-items --holdout-days 4294967296", "--holdout-days"),
        ("new-items --top-k 0", "--top-k"),
        ("new-items --dim 0", "--dim"),
        ("coldstart --seeds 0", "--seeds"),
        ("coldstart --seeds 1e20", "--seeds"),
        (
            "coldstart --first-seed 18446744073709551615 --seeds 2",
            "--first-seed",
        ),
        ("coldstart --ks 0", "--ks"),
        ("coldstart --ks=1,-3", "--ks"),
        ("coldstart --ks 1,1e20,all", "--ks"),
        ("coldstart --dim 0", "--dim"),
        ("coldstart --melu-epochs 0", "--melu-epochs"),
        ("coldstart --threads 0", "--threads"),
        ("embed --batch 0", "--batch"),
        ("embed --batch 1e20", "--batch"),
        ("bench embed --batch 0", "--batch"),
        ("bench neural --calls 0", "--calls"),
        ("bench neural --calls 99999999999999999999", "--calls"),
        ("bench neural --iterations 0", "--iterations"),
        ("bench sim --steps 0", "--steps"),
        ("bench sim --steps 1e20", "--steps"),
        ("bench ope --rows 0", "--rows"),
        ("bench ope --rows 1 --resamples 0", "--resamples"),
        ("bench ope --rows 18446744073709551616", "--rows"),
        ("bench load --repeats 0", "--repeats"),
        ("bench load --repeats 1000000000000", "--repeats"),
    ];
    let failures = refuse_all(&cases);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The same for `serve`, `bench serve`, `bench soak` and `ope`, whose options are defined in
/// serve.rs, bench/serve.rs, bench/soak.rs and ope.rs: `--reward-window 1e20` used to panic
/// converting to a Duration, `1e16` to overflow.
#[test]
fn out_of_range_serving_and_evaluation_numbers_are_refused_with_the_option_named() {
    let cases = [
        ("serve --model m --reward-window 1e20", "--reward-window"),
        ("serve --model m --reward-window 1e16", "--reward-window"),
        ("serve --model m --reward-window nan", "--reward-window"),
        ("serve --model m --reward-window 0", "--reward-window"),
        ("serve --model m --default-reward nan", "--default-reward"),
        ("serve --model m --default-reward=-inf", "--default-reward"),
        ("serve --model m --body-limit 0", "--body-limit"),
        ("serve --model m --body-limit 1e20", "--body-limit"),
        ("serve --model m --workers 100000", "--workers"),
        ("serve --model m --wal-limit-mb 0", "--wal-limit-mb"),
        ("serve --model m --wal-limit-mb 1e20", "--wal-limit-mb"),
        ("serve --model m --header-timeout 1e20", "--header-timeout"),
        ("serve --model m --body-timeout nan", "--body-timeout"),
        ("serve --model m --max-connections 0", "--max-connections"),
        ("serve --model m --explore epsilon:0", "--explore"),
        ("serve --model m --explore epsilon:1.01", "--explore"),
        ("serve --model m --explore softmax:0", "--explore"),
        ("serve --model m --explore softmax:nan", "--explore"),
        ("serve --model m --explore thompson", "--explore"),
        (
            "serve --model m --max-added-items 1e20",
            "--max-added-items",
        ),
        ("bench serve --model m --seconds 0", "--seconds"),
        ("bench serve --model m --seconds 1e20", "--seconds"),
        ("bench serve --model m --rate=-1", "--rate"),
        ("bench serve --model m --rate nan", "--rate"),
        ("bench serve --model m --rate 1e-300", "--rate"),
        ("bench serve --model m --connections 1,0", "--connections"),
        ("bench serve --model m --connections 1,x", "--connections"),
        (
            "bench serve --model m --connections 100000",
            "--connections",
        ),
        ("bench serve --model m --candidates 0", "--candidates"),
        ("bench serve --model m --slate 0", "--slate"),
        (
            "bench serve --model m --feedback-every 0",
            "--feedback-every",
        ),
        ("bench serve --model m --workers 100000", "--workers"),
        // A soak runs open loop only, so each case but --rate's own gives it a rate.
        (
            "bench soak --model m --rate 100 --duration 1e20",
            "--duration",
        ),
        ("bench soak --model m --rate 100 --every 0", "--every"),
        (
            "bench soak --model m --rate 100 --connections 0",
            "--connections",
        ),
        ("bench soak --model m --rate 1e-300", "--rate"),
        (
            "bench soak --model m --rate 100 --reward-window 1e16",
            "--reward-window",
        ),
        (
            "bench soak --model m --rate 100 --wal-limit-mb 0",
            "--wal-limit-mb",
        ),
        // `--data log` with a missing log makes a wrongly accepted number fail at once.
        (
            "ope --data log --log x --policy uniform --catalog x --train-fraction 2",
            "--train-fraction",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --train-fraction nan",
            "--train-fraction",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --clip=-1",
            "--clip",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --clip nan",
            "--clip",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --switch-tau nan",
            "--switch-tau",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --os-lambda=-1",
            "--os-lambda",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --folds 0",
            "--folds",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --resamples 1e20",
            "--resamples",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --draws 0",
            "--draws",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --positions 0",
            "--positions",
        ),
        ("ope --shop x --policy random --holdout 1.5", "--holdout"),
        ("ope --shop x --policy random --holdout 0", "--holdout"),
        (
            "ope --data log --log x --policy uniform --catalog x --lambda=-1",
            "--lambda",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --temperature 0",
            "--temperature",
        ),
        (
            "ope --data log --log x --policy uniform --catalog x --policy-draws 0",
            "--policy-draws",
        ),
    ];
    let failures = refuse_all(&cases);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_closed_output_pipe_ends_the_command_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_metarec"))
        .arg("--data-dir")
        .arg(data_dir())
        .args(["--quiet", "data", "stats", "online-retail", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the metarec binary runs");
    // The reader goes away before the command prints, as `| head -0` or a consumer that has
    // seen enough would: the statistics come after loading 540,000 rows, and their 3 KB fit a
    // pipe's buffer, so closing only after reading a line would race with the last write.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(
        !err.contains("panicked") && !err.contains("Broken pipe") && !err.contains("backtrace"),
        "{err}"
    );
    assert_ne!(out.status.code(), Some(101), "{err}");
    assert!(
        err.trim().is_empty(),
        "a closed pipe is no error to report: {err}"
    );
}
