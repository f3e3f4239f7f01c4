//! The `metarec` command line: data sets, and (as the project grows) simulation, training,
//! evaluation and serving.

mod args;
mod bench;
mod catalog;
mod coldstart;
mod coldstart_model;
mod data;
mod demo;
mod embed;
mod meta;
mod newitems;
mod ope;
mod pretrained;
mod progress;
mod report;
mod serve;
mod served;
mod shop;
mod sim;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// metarec: e-commerce recommendation driven by meta-reinforcement learning.
#[derive(Parser)]
#[command(name = "metarec", version, about, propagate_version = true)]
struct Cli {
    /// Data directory (default: $METAREC_DATA, else ./data).
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print only results: no progress messages or progress bars (bars are also hidden when
    /// standard error is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: calibrate the simulator, train the neural policy, meta-train its adjuster,
    /// run the cold-start arena against the baselines and write a report directory.
    Demo(demo::DemoArgs),
    /// Fetch data sets, print their statistics, export them as interaction logs.
    Data {
        #[command(subcommand)]
        command: data::DataCommand,
    },
    /// A shop's own data: import its catalog, events and users into a shop directory, summarise
    /// one, or generate a made-up one.
    Shop {
        #[command(subcommand)]
        command: shop::ShopCommand,
    },
    /// Check, convert or export interaction logs (a header naming the catalog, then JSON Lines of
    /// interactions with items named by key).
    Log {
        #[command(subcommand)]
        command: data::LogCommand,
    },
    /// The simulated shop: scenarios and calibration.
    Sim {
        #[command(subcommand)]
        command: sim::SimCommand,
    },
    /// Run policies on the same simulated new users and compare them, with 95% intervals.
    Arena(sim::ArenaArgs),
    /// Train the neural policy on a simulated scenario (REINFORCE, actor-critic, supervised,
    /// distillation of a teacher or of the posterior) or on a shop's own logged events (--shop).
    Train(train::TrainArgs),
    /// Meta-train the strategy adjuster of a trained model on simulated training users, or on a
    /// shop's logged users (--shop).
    MetaTrain(meta::MetaTrainArgs),
    /// Render results files (arena, training, meta-training, calibration, OPE, cold-start and
    /// new-item JSON) into a self-contained HTML report with plots.
    Report(report::ReportArgs),
    /// Embed item titles with the local text encoder (MiniLM), cached by model and text.
    Embed(embed::EmbedArgs),
    /// The new-item cold-start benchmark: rank products never seen sold (id-only against text
    /// features), HR@10 and NDCG@10 with 95% intervals.
    NewItems(newitems::NewItemArgs),
    /// Off-policy evaluation: estimate a policy's value on logs another policy collected (DM, IPW,
    /// SNIPW, DR, SNDR, switch-DR, DR-OS with bootstrap 95% intervals).
    Ope(ope::OpeArgs),
    /// The cold-start rating benchmark on MovieLens-100k (MeLU's protocol, paired seeds).
    Coldstart(coldstart::ColdStartArgs),
    /// Serve a trained model over HTTP: rank, feedback, per-user adaptation, a durable log.
    Serve(serve::ServeArgs),
    /// Benchmarks that print a table, measured against a baseline in the same run.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

/// Settings every command shares.
pub struct Global {
    /// The resolved data directory.
    pub data: metarec_data::fetch::DataDir,
    /// Suppress progress messages.
    pub quiet: bool,
}

impl Global {
    /// Prints a progress message on standard error unless quiet.
    pub fn progress(&self, message: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{message}");
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let global = Global {
        data: metarec_data::fetch::DataDir::resolve(cli.data_dir),
        quiet: cli.quiet,
    };
    match cli.command {
        Command::Demo(args) => demo::run(args, &global),
        Command::Data { command } => data::run(command, &global),
        Command::Shop { command } => shop::run(command, &global),
        Command::Log { command } => data::run_log(command, &global),
        Command::Sim { command } => sim::run(command, &global),
        Command::Arena(args) => sim::arena(args, &global),
        Command::Train(args) => train::run(args, &global),
        Command::MetaTrain(args) => meta::run(args, &global),
        Command::Embed(args) => embed::run(args, &global),
        Command::NewItems(args) => newitems::run(args, &global),
        Command::Report(args) => report::run(args, &global),
        Command::Ope(args) => ope::run(args, &global),
        Command::Coldstart(args) => coldstart::run(args, &global),
        Command::Serve(args) => serve::run(args, &global),
        Command::Bench { command } => bench::run(command, &global),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Combinations clap cannot express are usage errors too (exit status 2), reported the way
    // clap reports its own.
    if let Command::Train(args) = &cli.command {
        if let Some(message) = args.usage_error() {
            use clap::CommandFactory;
            Cli::command()
                .error(clap::error::ErrorKind::ArgumentConflict, message)
                .exit();
        }
    }
    // candle's small-matrix work (the policy network) is faster on one thread than with a pool on
    // 2 cores (the design note measured 6x for batch-1 steps; training batches here too), while
    // the text encoder's large matrices gain from every core. A user who sets RAYON_NUM_THREADS
    // keeps their choice.
    let big_matrices = matches!(
        cli.command,
        Command::Embed(_)
            | Command::NewItems(_)
            | Command::Bench {
                command: bench::BenchCommand::Embed(_)
            }
    );
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        let threads = if big_matrices {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            1
        };
        // SAFETY: nothing else runs yet: no thread has started, so no one reads the environment
        // concurrently.
        unsafe { std::env::set_var("RAYON_NUM_THREADS", threads.to_string()) };
    }
    // A closed standard output (`metarec data stats ... | head`) should end a command quietly,
    // as it ends `cat` or ripgrep. Rust starts programs with SIGPIPE ignored, so a write to a
    // closed pipe fails with EPIPE instead, and `println!` turns that failure into a panic. With
    // the default disposition back, the kernel ends the process at the first such write, from
    // whichever print site, thread or library it comes. `serve` keeps SIGPIPE ignored: tokio and
    // hyper may write to its sockets with writev, which raises SIGPIPE when a client has hung up,
    // and that must cost an error on one connection, not the server. The other commands write
    // only to standard output and error, to files, and (bench serve's load generator) to sockets
    // through std's `TcpStream::write`, which sends with MSG_NOSIGNAL and so never raises it.
    #[cfg(unix)]
    if !matches!(cli.command, Command::Serve(_)) {
        // SAFETY: no other thread exists yet, so none is changing signal dispositions at the same
        // time, and SIG_DFL is a valid disposition for SIGPIPE.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Parses every subcommand with its defaults (and only the arguments it requires), which
    /// checks that each default passes its own range check and that each value parser yields the
    /// field's type: clap compares the two only when a value is read, and panics on a mismatch.
    #[test]
    fn every_command_parses_with_its_defaults() {
        for line in [
            "demo",
            "data fetch all",
            "data stats online-retail",
            "data export obd --out x.jsonl",
            "shop import --events e.csv --out s",
            "shop stats s",
            "log check x.jsonl",
            "log export --out x.jsonl",
            "sim scenarios",
            "sim show",
            "sim calibrate",
            "arena",
            "train --out m",
            "train --out m --shop s",
            "meta-train --model m",
            "meta-train --model m --shop s",
            "report x.json",
            "embed",
            "new-items",
            "ope",
            "coldstart",
            "serve --model m",
            "bench serve --model m",
            "bench soak --model m",
            "bench embed",
            "bench neural",
            "bench sim",
            "bench ope",
            "bench load",
        ] {
            let argv = std::iter::once("metarec").chain(line.split(' '));
            match Cli::try_parse_from(argv) {
                Ok(_) => {}
                Err(e) => panic!("`metarec {line}` does not parse: {e}"),
            }
        }
    }

    #[test]
    fn shop_training_options_need_the_shop_and_the_logs_options_only_supervised_learning() {
        for line in [
            "train --out m --holdout 0.3",
            "train --out m --weighting ips",
            "train --out m --negatives 3",
            "train --out m --text-dims 4",
            "train --out m --shop s --log x.jsonl",
            "train --out m --shop s --resume --text-dims 4",
            "meta-train --model m --support 4",
            "meta-train --model m --shop s --scenario small",
        ] {
            let argv = std::iter::once("metarec").chain(line.split(' '));
            assert!(
                Cli::try_parse_from(argv).is_err(),
                "`metarec {line}` parses"
            );
        }
        let parsed = |line: &str| {
            let argv = std::iter::once("metarec").chain(line.split(' '));
            match Cli::try_parse_from(argv).map(|c| c.command) {
                Ok(Command::Train(args)) => args,
                _ => panic!("`metarec {line}` does not parse as train"),
            }
        };
        assert!(
            parsed("train --out m --shop s --algo supervised")
                .usage_error()
                .is_none()
        );
        assert!(
            parsed("train --out m --algo reinforce")
                .usage_error()
                .is_none()
        );
        // A simulator algorithm trains in a simulator of the shop, with a scenario's parameters
        // if asked, but the options of the shop's logs mean nothing there.
        assert!(
            parsed("train --out m --shop s --algo reinforce --scenario small")
                .usage_error()
                .is_none()
        );
        let e = parsed("train --out m --shop s --algo reinforce --holdout 0.3").usage_error();
        assert!(e.is_some_and(|e| e.contains("--holdout cannot be used with --algo reinforce")));
        // Supervised training on the shop's logs has no scenario.
        let e = parsed("train --out m --shop s --scenario small").usage_error();
        assert!(e.is_some_and(|e| e.contains("--scenario cannot be used")));
    }

    #[test]
    fn out_of_range_numbers_are_usage_errors_that_name_the_option() {
        for (line, option) in [
            ("demo --seeds 0", "--seeds"),
            ("arena --threads 5000", "--threads"),
            ("train --out m --gamma 1.5", "--gamma"),
            ("train --out m --lr nan", "--lr"),
            ("train --out m --shop s --holdout 1", "--holdout"),
            ("train --out m --shop s --max-weight 0.5", "--max-weight"),
            ("train --out m --shop s --text-dims 385", "--text-dims"),
            (
                "meta-train --model m --shop s --validation 1",
                "--validation",
            ),
            ("coldstart --ks 1,0", "--ks"),
            ("bench neural --calls 1e20", "--calls"),
        ] {
            let argv = std::iter::once("metarec").chain(line.split(' '));
            let Err(e) = Cli::try_parse_from(argv) else {
                panic!("`metarec {line}` parses");
            };
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{line}");
            assert!(e.to_string().contains(option), "{line}: {e}");
        }
    }
}
