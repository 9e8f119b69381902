//! CloudWatch Logs (JSON 1.1, `Logs_20140328.<Operation>`): the log groups the
//! daemon ensures and the streams simulated tasks write to.

use serde_json::{Value, json};

use super::api::{ApiError, ApiResult, Request, merge_tags};
use super::state::{LogEvent, LogGroup, State};
use crate::model::aws::LOG_RETENTION_DAYS;

pub fn handle(op: &str, req: Request, st: &mut State, now_ms: i64) -> ApiResult {
    match op {
        "CreateLogGroup" => create_log_group(req, st, now_ms),
        "PutRetentionPolicy" => put_retention(req, st),
        "DescribeLogGroups" => describe_log_groups(req, st),
        "CreateLogStream" => create_log_stream(req, st, now_ms),
        "PutLogEvents" => put_log_events(req, st, now_ms),
        "GetLogEvents" => get_log_events(req, st),
        "FilterLogEvents" => filter_log_events(req, st),
        other => Err(ApiError::unknown_operation(other)),
    }
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        400,
        "ResourceNotFoundException",
        format!("The specified {what} does not exist."),
    )
}

fn group_arn(st: &State, name: &str) -> String {
    format!("arn:aws:logs:{}:{}:log-group:{name}", st.region, st.account)
}

fn check_group_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/#".contains(&b));
    ok.then_some(()).ok_or_else(|| {
        ApiError::invalid(format!(
            "1 validation error detected: Value '{name}' at 'logGroupName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_/#A-Za-z0-9]+"
        ))
    })
}

fn create_log_group(req: Request, st: &mut State, now_ms: i64) -> ApiResult {
    let name = req.str("logGroupName")?.to_owned();
    check_group_name(&name)?;
    if st.log_groups.contains_key(&name) {
        return Err(ApiError::new(
            400,
            "ResourceAlreadyExistsException",
            "The specified log group already exists",
        ));
    }
    let mut group = LogGroup {
        created: now_ms,
        ..LogGroup::default()
    };
    if let Some(tags) = req.opt_object("tags")? {
        merge_tags(
            &mut group.tags,
            tags.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
        );
    }
    st.log_groups.insert(name, group);
    Ok(json!({}))
}

fn put_retention(req: Request, st: &mut State) -> ApiResult {
    let name = req.str("logGroupName")?.to_owned();
    let days = req
        .opt_i64("retentionInDays")?
        .ok_or_else(|| Request::missing("retentionInDays"))?;
    let days = u32::try_from(days)
        .ok()
        .filter(|d| LOG_RETENTION_DAYS.contains(d))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy constraint: Member must satisfy enum value set: {LOG_RETENTION_DAYS:?}"
            ))
        })?;
    let group = st
        .log_groups
        .get_mut(&name)
        .ok_or_else(|| not_found("log group"))?;
    group.retention_days = Some(days);
    Ok(json!({}))
}

fn describe_log_groups(req: Request, st: &mut State) -> ApiResult {
    let prefix = req.opt_str("logGroupNamePrefix")?.unwrap_or("");
    let limit = req.opt_i64("limit")?.unwrap_or(50).clamp(1, 50) as usize;
    let start = match req.opt_str("nextToken")? {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("Invalid nextToken"))?,
        None => 0,
    };
    let all: Vec<Value> = st
        .log_groups
        .iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(n, g)| {
            let mut v = json!({
                "logGroupName": n,
                "creationTime": g.created,
                "metricFilterCount": 0,
                "arn": format!("{}:*", group_arn(st, n)),
                "logGroupArn": group_arn(st, n),
                "storedBytes": g.streams.values().flat_map(|s| &s.1).map(|e| e.message.len()).sum::<usize>(),
                "logGroupClass": "STANDARD",
            });
            if let Some(d) = g.retention_days {
                v["retentionInDays"] = json!(d);
            }
            v
        })
        .collect();
    let end = (start + limit).min(all.len());
    let mut out = json!({ "logGroups": all.get(start.min(all.len())..end).unwrap_or_default() });
    if end < all.len() {
        out["nextToken"] = json!(end.to_string());
    }
    Ok(out)
}

fn create_log_stream(req: Request, st: &mut State, now_ms: i64) -> ApiResult {
    let group = req.str("logGroupName")?.to_owned();
    let stream = req.str("logStreamName")?.to_owned();
    if stream.is_empty() || stream.len() > 512 || stream.contains([':', '*']) {
        return Err(ApiError::invalid("Invalid logStreamName"));
    }
    let g = st
        .log_groups
        .get_mut(&group)
        .ok_or_else(|| not_found("log group"))?;
    if g.streams.contains_key(&stream) {
        return Err(ApiError::new(
            400,
            "ResourceAlreadyExistsException",
            "The specified log stream already exists",
        ));
    }
    g.streams.insert(stream, (now_ms, Vec::new()));
    Ok(json!({}))
}

fn put_log_events(req: Request, st: &mut State, now_ms: i64) -> ApiResult {
    let group = req.str("logGroupName")?.to_owned();
    let stream = req.str("logStreamName")?.to_owned();
    let events = req
        .opt_array("logEvents")?
        .ok_or_else(|| Request::missing("logEvents"))?;
    let mut parsed = Vec::new();
    for e in events {
        let timestamp = e
            .get("timestamp")
            .and_then(Value::as_i64)
            .ok_or_else(|| ApiError::invalid("logEvents[].timestamp is required"))?;
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .ok_or_else(|| ApiError::invalid("logEvents[].message is required"))?;
        parsed.push(LogEvent {
            timestamp,
            message: message.to_owned(),
            ingestion_time: now_ms,
        });
    }
    let g = st
        .log_groups
        .get_mut(&group)
        .ok_or_else(|| not_found("log group"))?;
    let s = g
        .streams
        .get_mut(&stream)
        .ok_or_else(|| not_found("log stream"))?;
    s.1.extend(parsed);
    s.1.sort_by_key(|e| e.timestamp);
    Ok(json!({ "nextSequenceToken": format!("{:056}", s.1.len()) }))
}

fn event_json(e: &LogEvent) -> Value {
    json!({ "timestamp": e.timestamp, "message": e.message, "ingestionTime": e.ingestion_time })
}

fn get_log_events(req: Request, st: &mut State) -> ApiResult {
    let group = req.str("logGroupName")?;
    let stream = req.str("logStreamName")?;
    let g = st
        .log_groups
        .get(group)
        .ok_or_else(|| not_found("log group"))?;
    let (_, events) = g
        .streams
        .get(stream)
        .ok_or_else(|| not_found("log stream"))?;
    let start_time = req.opt_i64("startTime")?.unwrap_or(i64::MIN);
    let end_time = req.opt_i64("endTime")?.unwrap_or(i64::MAX);
    let limit = req.opt_i64("limit")?.unwrap_or(10_000).clamp(1, 10_000) as usize;
    let selected: Vec<&LogEvent> = events
        .iter()
        .filter(|e| e.timestamp >= start_time && e.timestamp < end_time)
        .collect();
    let from_head = req.opt_bool("startFromHead")?.unwrap_or(false);
    // Tokens are positions: f/N reads forward from N, b/N backward up to N.
    let (start, end) = match req.opt_str("nextToken")? {
        Some(t) if t.starts_with("f/") => {
            let n: usize = t[2..]
                .parse()
                .map_err(|_| ApiError::invalid("The specified nextToken is invalid."))?;
            (n.min(selected.len()), (n + limit).min(selected.len()))
        }
        Some(t) if t.starts_with("b/") => {
            let n: usize = t[2..]
                .parse()
                .map_err(|_| ApiError::invalid("The specified nextToken is invalid."))?;
            let n = n.min(selected.len());
            (n.saturating_sub(limit), n)
        }
        Some(_) => return Err(ApiError::invalid("The specified nextToken is invalid.")),
        None if from_head => (0, limit.min(selected.len())),
        None => (selected.len().saturating_sub(limit), selected.len()),
    };
    Ok(json!({
        "events": selected[start..end].iter().map(|e| event_json(e)).collect::<Vec<_>>(),
        "nextForwardToken": format!("f/{end}"),
        "nextBackwardToken": format!("b/{start}"),
    }))
}

/// CloudWatch filter patterns, the common subset: terms (quoted or not) that
/// must all appear; an empty pattern matches everything.
fn matches(pattern: &str, message: &str) -> bool {
    let mut terms = Vec::new();
    let mut rest = pattern.trim();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            terms.push(&r[..end]);
            rest = r.get(end + 1..).unwrap_or("").trim_start();
        } else {
            let end = rest.find(' ').unwrap_or(rest.len());
            terms.push(&rest[..end]);
            rest = rest[end..].trim_start();
        }
    }
    terms.iter().all(|t| message.contains(t))
}

fn filter_log_events(req: Request, st: &mut State) -> ApiResult {
    let group = req.str("logGroupName")?;
    let g = st
        .log_groups
        .get(group)
        .ok_or_else(|| not_found("log group"))?;
    let names = req.opt_strings("logStreamNames")?;
    let prefix = req.opt_str("logStreamNamePrefix")?.unwrap_or("");
    let pattern = req.opt_str("filterPattern")?.unwrap_or("");
    let start_time = req.opt_i64("startTime")?.unwrap_or(i64::MIN);
    let end_time = req.opt_i64("endTime")?.unwrap_or(i64::MAX);
    let limit = req.opt_i64("limit")?.unwrap_or(10_000).clamp(1, 10_000) as usize;
    let skip = match req.opt_str("nextToken")? {
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| ApiError::invalid("The specified nextToken is invalid."))?,
        None => 0,
    };
    let mut all: Vec<(i64, &str, &LogEvent, usize)> = g
        .streams
        .iter()
        .filter(|(n, _)| n.starts_with(prefix) && names.as_ref().is_none_or(|ns| ns.contains(n)))
        .flat_map(|(n, (_, events))| {
            events
                .iter()
                .enumerate()
                .map(move |(i, e)| (e.timestamp, n.as_str(), e, i))
        })
        .filter(|(ts, _, e, _)| *ts >= start_time && *ts < end_time && matches(pattern, &e.message))
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(b.1)).then(a.3.cmp(&b.3)));
    let end = (skip + limit).min(all.len());
    let events: Vec<Value> = all[skip.min(all.len())..end]
        .iter()
        .map(|(_, stream, e, i)| {
            let mut v = event_json(e);
            v["logStreamName"] = json!(stream);
            v["eventId"] = json!(format!("{:020}{i:08}", e.timestamp));
            v
        })
        .collect();
    let mut out = json!({ "events": events, "searchedLogStreams": [] });
    if end < all.len() {
        out["nextToken"] = json!(end.to_string());
    }
    Ok(out)
}
