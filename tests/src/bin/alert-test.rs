//! `scripts/alert-test --stack NAME`: drives every alarm of a deployed stack into ALARM (pushing
//! its metric over the threshold, or setting its state where a metric cannot be forced) and
//! waits, bounded, until each is in ALARM, so the team sees every alert reach email / Slack.
//! Uses the default AWS credential chain. Exits 0 when every alarm reached ALARM.

use std::process::ExitCode;
use std::time::Duration;

use tests::alerts::{
    all_alarmed, describe, plan, plan_table, result_table, run, stack_alarm_names, AlarmSpec, RunOptions,
};

const USAGE: &str = "usage: alert-test --stack NAME [--region REGION] [--dry-run] [--set-state-only] [--only TEXT] [--timeout SECONDS] [--poll SECONDS]

  --stack NAME       the deployed stack (its AWS::CloudWatch::Alarm resources are tested)
  --region REGION    default: the AWS config / AWS_REGION
  --dry-run          print the plan, change nothing
  --set-state-only   never publish data (SetAlarmState for every alarm): no test figures in the
                     cost and error metrics
  --only TEXT        only alarms whose name contains TEXT (repeatable)
  --timeout SECONDS  how long to wait for ALARM in all (default 900)
  --poll SECONDS     between DescribeAlarms polls (default 15)";

struct Args {
    stack: String,
    region: Option<String>,
    dry_run: bool,
    set_state_only: bool,
    only: Vec<String>,
    timeout: Duration,
    poll: Duration,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args {
        stack: String::new(),
        region: None,
        dry_run: false,
        set_state_only: false,
        only: Vec::new(),
        timeout: Duration::from_secs(900),
        poll: Duration::from_secs(15),
    };
    let secs = |flag: &str, v: Option<String>| -> Result<Duration, String> {
        let v = v.ok_or_else(|| format!("{flag} needs a value"))?;
        v.parse::<u64>().map(Duration::from_secs).map_err(|_| format!("{flag}: not a number of seconds: {v}"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--stack" => a.stack = it.next().ok_or("--stack needs a stack name")?,
            "--region" => a.region = Some(it.next().ok_or("--region needs a region")?),
            "--dry-run" => a.dry_run = true,
            "--set-state-only" => a.set_state_only = true,
            "--only" => a.only.push(it.next().ok_or("--only needs a text")?),
            "--timeout" => a.timeout = secs("--timeout", it.next())?,
            "--poll" => a.poll = secs("--poll", it.next())?,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument: {other}")),
        }
    }
    if a.stack.is_empty() {
        return Err("--stack is required".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("alert-test: {e}\n");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(r) = &args.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    let config = loader.load().await;
    let cfn = aws_sdk_cloudformation::Client::new(&config);
    let cw = aws_sdk_cloudwatch::Client::new(&config);

    let names = match stack_alarm_names(&cfn, &args.stack).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("alert-test: {e}");
            return ExitCode::FAILURE;
        }
    };
    let names: Vec<String> =
        names.into_iter().filter(|n| args.only.is_empty() || args.only.iter().any(|o| n.contains(o))).collect();
    if names.is_empty() {
        eprintln!(
            "alert-test: stack {} has no alarms{}",
            args.stack,
            if args.only.is_empty() { "" } else { " matching --only" }
        );
        return ExitCode::FAILURE;
    }
    let alarms = match describe(&cw, &names).await {
        Ok(a) => a,
        Err(e) => {
            eprintln!("alert-test: {e}");
            return ExitCode::FAILURE;
        }
    };
    let steps: Vec<_> = alarms.iter().map(|a| plan(&AlarmSpec::from(a), args.set_state_only)).collect();
    println!("{} alarm(s) of stack {}:\n\n{}", steps.len(), args.stack, plan_table(&steps));
    if args.dry_run {
        println!("--dry-run: nothing changed.");
        return ExitCode::SUCCESS;
    }
    println!("Driving them into ALARM; waiting up to {} s...\n", args.timeout.as_secs());
    let outcomes = run(&cw, &steps, &RunOptions { timeout: args.timeout, poll: args.poll }).await;
    println!("{}", result_table(&steps, &outcomes));
    println!(
        "Alarms set with SetAlarmState return to OK at their next evaluation; pushed ones once the \
         test data leaves their evaluation window. Check that each notification arrived."
    );
    if all_alarmed(&outcomes) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
