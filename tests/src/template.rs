//! Reads template.yaml as CloudFormation would resolve it, enough to find every metric an alarm
//! or a dashboard names: short-form tags (`!Ref`, `!Sub`, `!GetAtt`, `!If`...) and their long
//! forms, parameters resolved to their defaults (or to values set with `with_parameter`, e.g.
//! `at_level`), Conditions evaluated on those values, resources to `<LogicalId>` /
//! `<LogicalId.Attr>`. `created_alarms()`, `created_dashboards()` and `metric_refs()` see only the
//! resources created with those parameter values; `alarms()`, `dashboards()` and
//! `resources_of_type` see every declared one, whatever its Condition.

use std::collections::BTreeMap;

use serde_json::Value as Json;
use serde_yaml::Value;
use shared::metric_names::MetricsLevel;

/// A parsed template, with the parameter values it is read at.
#[derive(Clone)]
pub struct Template {
    root: Value,
    /// Parameter values that replace the defaults.
    parameters: BTreeMap<String, String>,
}

/// One metric named by an alarm or a dashboard widget.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MetricRef {
    pub namespace: String,
    pub name: String,
    /// Dimension keys, sorted.
    pub dimensions: Vec<String>,
    /// Where it was found, e.g. `alarm ApiErrorsAlarm` or `dashboard UsageDashboard, widget "..."`.
    pub source: String,
}

/// A metric alarm as the template declares it (the alert-test planner's input too).
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmDef {
    pub logical_id: String,
    pub alarm_name: String,
    pub description: String,
    pub namespace: Option<String>,
    pub metric_name: Option<String>,
    pub dimensions: Vec<(String, String)>,
    pub statistic: Option<String>,
    pub extended_statistic: Option<String>,
    pub period: Option<i32>,
    pub evaluation_periods: i32,
    pub datapoints_to_alarm: Option<i32>,
    pub threshold: Option<f64>,
    pub comparison: String,
    pub treat_missing_data: Option<String>,
    /// Metric-math alarms (`Metrics:`): the metrics inside, and the expressions.
    pub math_metrics: Vec<MetricRef>,
    pub expressions: Vec<String>,
    pub alarm_actions: Vec<String>,
}

impl Template {
    /// Parses template text.
    pub fn parse(text: &str) -> Result<Template, String> {
        let root: Value = serde_yaml::from_str(text).map_err(|e| format!("template.yaml is not YAML: {e}"))?;
        if root.get("Resources").and_then(Value::as_mapping).is_none() {
            return Err("template.yaml has no Resources mapping".into());
        }
        Ok(Template { root, parameters: BTreeMap::new() })
    }

    /// The same template read with `name` set to `value` instead of its default.
    pub fn with_parameter(mut self, name: &str, value: &str) -> Template {
        self.parameters.insert(name.to_string(), value.to_string());
        self
    }

    /// The template as deployed with `MonitoringLevel` = `level`.
    pub fn at_level(self, level: MetricsLevel) -> Template {
        self.with_parameter("MonitoringLevel", level.as_str())
    }

    /// The value a parameter has here: the one set with `with_parameter`, else its default.
    pub fn parameter_value(&self, name: &str) -> Option<String> {
        self.parameters.get(name).cloned().or_else(|| self.parameter_default(name))
    }

    /// Evaluates a named condition of the `Conditions` section.
    pub fn condition(&self, name: &str) -> Result<bool, String> {
        let c = self
            .root
            .get("Conditions")
            .and_then(|c| c.get(name))
            .ok_or_else(|| format!("no condition {name} in Conditions"))?;
        self.evaluate(c)
    }

    fn evaluate(&self, v: &Value) -> Result<bool, String> {
        if let Value::Mapping(m) = v {
            if let (1, Some(name)) = (m.len(), m.get("Condition").and_then(Value::as_str)) {
                return self.condition(name);
            }
        }
        let (tag, arg) = intrinsic(v).ok_or_else(|| format!("{v:?} is not a condition"))?;
        let items = || arg.as_sequence().ok_or_else(|| format!("!{tag} needs a list"));
        match tag.as_str() {
            "Condition" => self.condition(arg.as_str().ok_or("!Condition of a non-string")?),
            "Equals" => {
                let pair = items()?;
                if pair.len() != 2 {
                    return Err("!Equals needs two values".into());
                }
                Ok(self.resolve(&pair[0])? == self.resolve(&pair[1])?)
            }
            "Not" => Ok(!self.evaluate(items()?.first().ok_or("!Not needs one condition")?)?),
            "And" => items()?.iter().try_fold(true, |all, c| Ok(all && self.evaluate(c)?)),
            "Or" => items()?.iter().try_fold(false, |any, c| Ok(any || self.evaluate(c)?)),
            other => Err(format!("!{other} is not a condition function")),
        }
    }

    /// True when the resource is created at these parameter values (its Condition holds).
    pub fn is_created(&self, resource: &Value) -> Result<bool, String> {
        match resource.get("Condition").and_then(Value::as_str) {
            None => Ok(true),
            Some(c) => self.condition(c),
        }
    }

    /// (logical id, resource) of every resource of that type created at these parameter values.
    pub fn created_of_type(&self, ty: &str) -> Result<Vec<(String, &Value)>, String> {
        let mut out = Vec::new();
        for (id, r) in self.resources_of_type(ty) {
            if self.is_created(r).map_err(|e| format!("{id}: {e}"))? {
                out.push((id, r));
            }
        }
        Ok(out)
    }

    /// Reads and parses a template file.
    pub fn load(path: &std::path::Path) -> Result<Template, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        Template::parse(&text)
    }

    /// (logical id, resource) of every resource of that type, in template order.
    pub fn resources_of_type(&self, ty: &str) -> Vec<(String, &Value)> {
        let Some(resources) = self.root.get("Resources").and_then(Value::as_mapping) else { return Vec::new() };
        resources
            .iter()
            .filter(|(_, r)| r.get("Type").and_then(Value::as_str) == Some(ty))
            .filter_map(|(k, r)| Some((k.as_str()?.to_string(), r)))
            .collect()
    }

    /// True when the template declares that logical id.
    pub fn has_resource(&self, logical_id: &str) -> bool {
        self.root.get("Resources").and_then(|r| r.get(logical_id)).is_some()
    }

    /// What `Globals: Function:` sets on every function (its `Environment` among them), if any.
    pub fn global_function(&self) -> Option<&Value> {
        self.root.get("Globals")?.get("Function")
    }

    /// The default of a parameter, as a string.
    pub fn parameter_default(&self, name: &str) -> Option<String> {
        let d = self.root.get("Parameters")?.get(name)?.get("Default")?;
        Some(scalar(d)?.to_string())
    }

    /// Resolves a value to a string: parameters to their defaults, pseudo parameters to fixed
    /// sample values, resources to `<Id>` and attributes to `<Id.Attr>`.
    pub fn resolve(&self, v: &Value) -> Result<String, String> {
        if let Some(s) = scalar(v) {
            return Ok(s);
        }
        let (tag, arg) = intrinsic(v).ok_or_else(|| format!("cannot resolve {v:?} to a string"))?;
        match tag.as_str() {
            "Ref" => Ok(self.name(arg.as_str().ok_or("!Ref of a non-string")?)),
            "GetAtt" => {
                let path = match arg {
                    Value::String(s) => s.clone(),
                    Value::Sequence(parts) => parts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("."),
                    _ => return Err(format!("!GetAtt of {arg:?}")),
                };
                Ok(format!("<{path}>"))
            }
            "Sub" => {
                let (text, vars) = match arg {
                    Value::String(s) => (s.as_str(), None),
                    Value::Sequence(parts) if parts.len() == 2 => {
                        (parts[0].as_str().ok_or("!Sub's first item is not a string")?, parts[1].as_mapping())
                    }
                    _ => return Err(format!("!Sub of {arg:?}")),
                };
                self.substitute(text, vars)
            }
            "Join" => {
                let parts = arg.as_sequence().filter(|p| p.len() == 2).ok_or("!Join needs [separator, list]")?;
                let sep = parts[0].as_str().unwrap_or_default();
                let items = parts[1].as_sequence().ok_or("!Join's list is not a list")?;
                Ok(items.iter().map(|i| self.resolve(i)).collect::<Result<Vec<_>, _>>()?.join(sep))
            }
            "If" => {
                let parts = arg.as_sequence().filter(|p| p.len() == 3).ok_or("!If needs [condition, then, else]")?;
                let condition = parts[0].as_str().ok_or("!If's condition is not a name")?;
                self.resolve(if self.condition(condition)? { &parts[1] } else { &parts[2] })
            }
            "Select" => {
                let parts = arg.as_sequence().filter(|p| p.len() == 2).ok_or("!Select needs [index, list]")?;
                let index = scalar(&parts[0]).and_then(|i| i.parse::<usize>().ok()).ok_or("!Select's index")?;
                let items = self.list(&parts[1])?;
                items.get(index).cloned().ok_or_else(|| format!("!Select index {index} out of {items:?}"))
            }
            other => Err(format!("cannot resolve !{other} to a string")),
        }
    }

    /// A list: a YAML sequence of strings, or `!Split [delimiter, string]`.
    fn list(&self, v: &Value) -> Result<Vec<String>, String> {
        // The tag first: serde_yaml sees through a tag to the sequence under it.
        match (intrinsic(v), v) {
            (Some((tag, arg)), _) if tag == "Split" => {
                let parts = arg.as_sequence().filter(|p| p.len() == 2).ok_or("!Split needs [delimiter, string]")?;
                let delimiter = parts[0].as_str().ok_or("!Split's delimiter")?;
                Ok(self.resolve(&parts[1])?.split(delimiter).map(str::to_owned).collect())
            }
            (None, Value::Sequence(items)) => items.iter().map(|i| self.resolve(i)).collect(),
            _ => Err(format!("cannot resolve {v:?} to a list")),
        }
    }

    fn name(&self, name: &str) -> String {
        match name {
            "AWS::StackName" => "stack".into(),
            "AWS::Region" => "us-east-1".into(),
            "AWS::AccountId" => "123456789012".into(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            _ => self.parameter_value(name).unwrap_or_else(|| format!("<{name}>")),
        }
    }

    fn substitute(&self, text: &str, vars: Option<&serde_yaml::Mapping>) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find("${") {
            out.push_str(&rest[..i]);
            let after = &rest[i + 2..];
            let end = after.find('}').ok_or_else(|| format!("unclosed ${{ in !Sub: {text}"))?;
            let var = &after[..end];
            if let Some(literal) = var.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.and_then(|m| m.get(var)) {
                out.push_str(&self.resolve(v)?);
            } else if var.contains('.') && !var.starts_with("AWS::") {
                out.push_str(&format!("<{var}>"));
            } else {
                out.push_str(&self.name(var));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Every AWS::CloudWatch::Alarm declared, whatever its Condition.
    pub fn alarms(&self) -> Result<Vec<AlarmDef>, String> {
        self.alarms_of(self.resources_of_type("AWS::CloudWatch::Alarm"))
    }

    /// The AWS::CloudWatch::Alarms created at these parameter values (e.g. `at_level`).
    pub fn created_alarms(&self) -> Result<Vec<AlarmDef>, String> {
        self.alarms_of(self.created_of_type("AWS::CloudWatch::Alarm")?)
    }

    fn alarms_of(&self, resources: Vec<(String, &Value)>) -> Result<Vec<AlarmDef>, String> {
        let mut out = Vec::new();
        for (id, r) in resources {
            let p = r.get("Properties").ok_or_else(|| format!("alarm {id} has no Properties"))?;
            let text = |k: &str| p.get(k).map(|v| self.resolve(v)).transpose();
            let int = |k: &str| -> Result<Option<i32>, String> {
                text(k)?
                    .map(|s| s.parse::<i32>().map_err(|_| format!("alarm {id}: {k} is not an integer: {s}")))
                    .transpose()
            };
            let mut math_metrics = Vec::new();
            let mut expressions = Vec::new();
            for q in p.get("Metrics").and_then(Value::as_sequence).into_iter().flatten() {
                if let Some(e) = q.get("Expression") {
                    expressions.push(self.resolve(e)?);
                }
                if let Some(m) = q.get("MetricStat").and_then(|s| s.get("Metric")) {
                    math_metrics.push(self.metric_of(m, &format!("alarm {id}"))?);
                }
            }
            let dimensions = self.dimensions(p.get("Dimensions"))?;
            out.push(AlarmDef {
                alarm_name: text("AlarmName")?.unwrap_or_else(|| format!("<{id}>")),
                description: text("AlarmDescription")?.unwrap_or_default(),
                namespace: text("Namespace")?,
                metric_name: text("MetricName")?,
                dimensions,
                statistic: text("Statistic")?,
                extended_statistic: text("ExtendedStatistic")?,
                period: int("Period")?,
                evaluation_periods: int("EvaluationPeriods")?
                    .ok_or_else(|| format!("alarm {id} has no EvaluationPeriods"))?,
                datapoints_to_alarm: int("DatapointsToAlarm")?,
                threshold: text("Threshold")?
                    .map(|s| s.parse::<f64>().map_err(|_| format!("alarm {id}: Threshold is not a number: {s}")))
                    .transpose()?,
                comparison: text("ComparisonOperator")?
                    .ok_or_else(|| format!("alarm {id} has no ComparisonOperator"))?,
                treat_missing_data: text("TreatMissingData")?,
                math_metrics,
                expressions,
                alarm_actions: p
                    .get("AlarmActions")
                    .and_then(Value::as_sequence)
                    .into_iter()
                    .flatten()
                    .map(|a| self.resolve(a))
                    .collect::<Result<_, _>>()?,
                logical_id: id,
            });
        }
        Ok(out)
    }

    fn dimensions(&self, v: Option<&Value>) -> Result<Vec<(String, String)>, String> {
        v.and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .map(|d| {
                let name = d.get("Name").ok_or("a dimension has no Name")?;
                let value = d.get("Value").ok_or("a dimension has no Value")?;
                Ok((self.resolve(name)?, self.resolve(value)?))
            })
            .collect()
    }

    fn metric_of(&self, m: &Value, source: &str) -> Result<MetricRef, String> {
        let field = |k: &str| {
            m.get(k).map(|v| self.resolve(v)).transpose()?.ok_or_else(|| format!("{source}: a metric has no {k}"))
        };
        let mut dimensions: Vec<String> = self.dimensions(m.get("Dimensions"))?.into_iter().map(|(k, _)| k).collect();
        dimensions.sort();
        Ok(MetricRef {
            namespace: field("Namespace")?,
            name: field("MetricName")?,
            dimensions,
            source: source.to_string(),
        })
    }

    /// Every metric named by an alarm (plain or metric math) or a dashboard widget (metric rows
    /// and SEARCH expressions) created at these parameter values.
    pub fn metric_refs(&self) -> Result<Vec<MetricRef>, String> {
        let mut out = Vec::new();
        for a in self.created_alarms()? {
            let source = format!("alarm {}", a.logical_id);
            match (&a.namespace, &a.metric_name) {
                (Some(ns), Some(name)) => {
                    let mut dimensions: Vec<String> = a.dimensions.iter().map(|(k, _)| k.clone()).collect();
                    dimensions.sort();
                    out.push(MetricRef { namespace: ns.clone(), name: name.clone(), dimensions, source });
                }
                (None, None) if !a.math_metrics.is_empty() => out.extend(a.math_metrics),
                _ => return Err(format!("{source} names neither a metric (Namespace + MetricName) nor Metrics")),
            }
        }
        for (id, d) in self.created_dashboards()? {
            out.extend(dashboard_metrics(&id, &d)?);
        }
        Ok(out)
    }

    /// Every dashboard declared, its body resolved and parsed.
    pub fn dashboards(&self) -> Result<Vec<(String, Json)>, String> {
        self.dashboards_of(self.resources_of_type("AWS::CloudWatch::Dashboard"))
    }

    /// The dashboards created at these parameter values.
    pub fn created_dashboards(&self) -> Result<Vec<(String, Json)>, String> {
        self.dashboards_of(self.created_of_type("AWS::CloudWatch::Dashboard")?)
    }

    fn dashboards_of(&self, resources: Vec<(String, &Value)>) -> Result<Vec<(String, Json)>, String> {
        resources
            .into_iter()
            .map(|(id, r)| {
                let body = r
                    .get("Properties")
                    .and_then(|p| p.get("DashboardBody"))
                    .ok_or_else(|| format!("dashboard {id} has no DashboardBody"))?;
                let text = self.resolve(body)?;
                let json = serde_json::from_str(&text).map_err(|e| format!("dashboard {id}: body is not JSON: {e}"))?;
                Ok((id, json))
            })
            .collect()
    }
}

/// Whose permissions an IAM statement grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a role (a function's `Policies`, an `AWS::IAM::Role`'s `Policies`).
    Identity,
    /// On a resource (key, bucket, queue or topic policy): `'*'` there means the resource itself.
    Resource,
}

/// One IAM statement of the template, resolved at the template's parameter values.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyStatement {
    /// The resource that carries it, e.g. `SlackWorkerFunction` or `EventsStreamRole`.
    pub owner: String,
    pub kind: PolicyKind,
    pub sid: Option<String>,
    pub effect: String,
    pub actions: Vec<String>,
    /// Resolved: parameters to their values, resources to `<Id>` / `<Id.Attr>`.
    pub resources: Vec<String>,
    /// Condition keys used (e.g. `cloudwatch:namespace`).
    pub condition_keys: Vec<String>,
    /// The template condition of an `!If [condition, statement, !Ref AWS::NoValue]` statement.
    pub when: Option<String>,
}

/// A permission that is not a statement of the template: a managed policy or a SAM policy
/// template (its statements are not in the template, so it is judged by name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachedPolicy {
    pub owner: String,
    /// The managed policy ARN (resolved) or the SAM policy template's name.
    pub name: String,
}

impl Template {
    /// Every IAM statement (identity and resource policies) of the resources created at these
    /// parameter values, both branches of an `!If` around a statement included, and every
    /// managed policy or SAM policy template attached.
    pub fn policy_statements(&self) -> Result<(Vec<PolicyStatement>, Vec<AttachedPolicy>), String> {
        let mut statements = Vec::new();
        let mut attached = Vec::new();
        let Some(resources) = self.root.get("Resources").and_then(Value::as_mapping) else {
            return Ok((statements, attached));
        };
        for (id, r) in resources {
            let id = id.as_str().unwrap_or_default().to_string();
            if !self.is_created(r).map_err(|e| format!("{id}: {e}"))? {
                continue;
            }
            let ty = r.get("Type").and_then(Value::as_str).unwrap_or_default();
            let props = r.get("Properties");
            let prop = |k: &str| props.and_then(|p| p.get(k));
            let mut documents: Vec<(PolicyKind, &Value)> = Vec::new();
            match ty {
                "AWS::Serverless::Function" => {
                    for p in prop("Policies").and_then(Value::as_sequence).into_iter().flatten() {
                        match p {
                            Value::String(name) => {
                                attached.push(AttachedPolicy { owner: id.clone(), name: name.clone() })
                            }
                            Value::Mapping(_) if p.get("Statement").is_some() => {
                                documents.push((PolicyKind::Identity, p))
                            }
                            Value::Mapping(m) => {
                                for k in m.keys().filter_map(Value::as_str) {
                                    attached.push(AttachedPolicy { owner: id.clone(), name: k.to_string() });
                                }
                            }
                            other => attached.push(AttachedPolicy { owner: id.clone(), name: self.resolve(other)? }),
                        }
                    }
                }
                "AWS::IAM::Role" | "AWS::IAM::ManagedPolicy" | "AWS::IAM::Policy" => {
                    for p in prop("Policies").and_then(Value::as_sequence).into_iter().flatten() {
                        if let Some(d) = p.get("PolicyDocument") {
                            documents.push((PolicyKind::Identity, d));
                        }
                    }
                    if let Some(d) = prop("PolicyDocument") {
                        documents.push((PolicyKind::Identity, d));
                    }
                    for arn in prop("ManagedPolicyArns").and_then(Value::as_sequence).into_iter().flatten() {
                        attached.push(AttachedPolicy { owner: id.clone(), name: self.resolve(arn)? });
                    }
                }
                "AWS::KMS::Key" => documents.extend(prop("KeyPolicy").map(|d| (PolicyKind::Resource, d))),
                "AWS::S3::BucketPolicy" | "AWS::SQS::QueuePolicy" | "AWS::SNS::TopicPolicy" => {
                    documents.extend(prop("PolicyDocument").map(|d| (PolicyKind::Resource, d)))
                }
                _ => {}
            }
            for (kind, doc) in documents {
                let items: Vec<&Value> = match doc.get("Statement") {
                    Some(Value::Sequence(items)) => items.iter().collect(),
                    Some(one) => vec![one],
                    None => Vec::new(),
                };
                for item in items {
                    // `!If [condition, statement, !Ref AWS::NoValue]`: both branches are grants.
                    let (branches, when): (Vec<&Value>, Option<String>) = match intrinsic(item) {
                        Some((tag, arg)) if tag == "If" => {
                            let parts = arg.as_sequence();
                            let when = parts.and_then(|p| p.first()).and_then(Value::as_str).map(str::to_string);
                            (parts.map(|p| p.iter().skip(1).collect()).unwrap_or_default(), when)
                        }
                        _ => (vec![item], None),
                    };
                    for st in branches.into_iter().filter(|b| b.get("Effect").is_some()) {
                        let mut statement = self.statement(&id, kind, st)?;
                        statement.when = when.clone();
                        statements.push(statement);
                    }
                }
            }
        }
        Ok((statements, attached))
    }

    fn statement(&self, owner: &str, kind: PolicyKind, st: &Value) -> Result<PolicyStatement, String> {
        let list = |k: &str| -> Result<Vec<String>, String> {
            match st.get(k) {
                None => Ok(Vec::new()),
                Some(Value::Sequence(items)) => items.iter().map(|i| self.resolve(i)).collect(),
                Some(one) => Ok(vec![self.resolve(one)?]),
            }
        };
        let condition_keys = st
            .get("Condition")
            .and_then(Value::as_mapping)
            .into_iter()
            .flat_map(|ops| ops.values())
            .filter_map(Value::as_mapping)
            .flat_map(|keys| keys.keys().filter_map(Value::as_str).map(str::to_string))
            .collect();
        Ok(PolicyStatement {
            owner: owner.to_string(),
            kind,
            sid: st.get("Sid").and_then(Value::as_str).map(str::to_string),
            effect: st.get("Effect").map(|e| self.resolve(e)).transpose()?.unwrap_or_default(),
            actions: list("Action")?,
            resources: list("Resource")?,
            condition_keys,
            when: None,
        })
    }
}

/// A plain scalar as a string.
fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `!Tag arg` or `{"Fn::Tag": arg}` / `{"Ref": arg}` as (Tag, arg).
fn intrinsic(v: &Value) -> Option<(String, &Value)> {
    match v {
        Value::Tagged(t) => Some((t.tag.to_string().trim_start_matches('!').to_string(), &t.value)),
        Value::Mapping(m) if m.len() == 1 => {
            let (k, arg) = m.iter().next()?;
            let k = k.as_str()?;
            let tag = if k == "Ref" { "Ref" } else { k.strip_prefix("Fn::")? };
            Some((tag.to_string(), arg))
        }
        _ => None,
    }
}

/// The metrics of one dashboard: rows `[namespace, name, key, value, ..., {options}]` (with
/// "." for "same as the row above") and `SEARCH('{namespace,key,...} MetricName="name"', ...)`.
pub fn dashboard_metrics(id: &str, body: &Json) -> Result<Vec<MetricRef>, String> {
    let mut out = Vec::new();
    let widgets = body["widgets"].as_array().ok_or_else(|| format!("dashboard {id} has no widgets list"))?;
    for w in widgets {
        if w["type"] != "metric" {
            continue;
        }
        let title = w["properties"]["title"].as_str().unwrap_or("untitled");
        let source = format!("dashboard {id}, widget \"{title}\"");
        let rows = w["properties"]["metrics"].as_array().ok_or_else(|| format!("{source} has no metrics"))?;
        let mut previous: Vec<String> = Vec::new();
        for row in rows {
            let items = row.as_array().ok_or_else(|| format!("{source}: a metrics row is not a list"))?;
            if let Some(expr) = items.first().and_then(|i| i["expression"].as_str()) {
                out.extend(search_metrics(expr, &source)?);
                continue;
            }
            let mut cells: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item {
                    Json::String(s) if s == "." => cells
                        .push(previous.get(i).cloned().ok_or_else(|| format!("{source}: \".\" with no row above"))?),
                    Json::String(s) if s == "..." => {
                        return Err(format!("{source}: write rows out in full (\"...\" is not checked)"))
                    }
                    Json::String(s) => cells.push(s.clone()),
                    Json::Object(_) => {}
                    other => return Err(format!("{source}: unexpected {other} in a metrics row")),
                }
            }
            if cells.len() < 2 || !cells.len().is_multiple_of(2) {
                return Err(format!("{source}: row {cells:?} is not [namespace, name, key, value, ...]"));
            }
            let mut dimensions: Vec<String> = cells[2..].chunks(2).map(|kv| kv[0].clone()).collect();
            dimensions.sort();
            out.push(MetricRef {
                namespace: cells[0].clone(),
                name: cells[1].clone(),
                dimensions,
                source: source.clone(),
            });
            previous = cells;
        }
    }
    Ok(out)
}

/// The metrics a SEARCH expression selects (an expression without SEARCH names none).
fn search_metrics(expr: &str, source: &str) -> Result<Vec<MetricRef>, String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("SEARCH(") {
        let after = &rest[i..];
        let open = after.find('{').ok_or_else(|| format!("{source}: SEARCH without {{namespace,...}}: {expr}"))?;
        let close = after.find('}').ok_or_else(|| format!("{source}: SEARCH without }}: {expr}"))?;
        let schema: Vec<String> =
            after[open + 1..close].split(',').map(|s| s.trim().trim_matches('"').to_string()).collect();
        let tail = &after[close..];
        let name = tail
            .split("MetricName=")
            .nth(1)
            .and_then(|s| s.trim_start().strip_prefix('"'))
            .and_then(|s| s.split('"').next())
            .ok_or_else(|| format!("{source}: SEARCH without MetricName=\"...\": {expr}"))?;
        let mut dimensions = schema[1..].to_vec();
        dimensions.sort();
        out.push(MetricRef {
            namespace: schema[0].clone(),
            name: name.to_string(),
            dimensions,
            source: format!("{source} (SEARCH)"),
        });
        rest = &after[close..];
    }
    Ok(out)
}

/// Log group logical ids a `SOURCE '...'` dashboard query or a QueryDefinition names.
pub fn query_definitions(t: &Template) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out = BTreeMap::new();
    for (id, r) in t.resources_of_type("AWS::Logs::QueryDefinition") {
        let groups = r
            .get("Properties")
            .and_then(|p| p.get("LogGroupNames"))
            .and_then(Value::as_sequence)
            .ok_or_else(|| format!("query {id} has no LogGroupNames"))?;
        out.insert(id, groups.iter().map(|g| t.resolve(g)).collect::<Result<_, _>>()?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: &str = r#"
Parameters:
  MetricsNamespace: {Type: String, Default: BedrockUsage}
  Limit: {Type: Number, Default: 5}
Resources:
  Fn: {Type: AWS::Serverless::Function}
  A:
    Type: AWS::CloudWatch::Alarm
    Properties:
      AlarmName: !Sub ${AWS::StackName}-A
      Namespace: !Ref MetricsNamespace
      MetricName: APIErrors
      Dimensions: [{Name: FunctionName, Value: !Ref Fn}]
      Statistic: Sum
      Period: 300
      EvaluationPeriods: 2
      Threshold: !Ref Limit
      ComparisonOperator: GreaterThanThreshold
  D:
    Type: AWS::CloudWatch::Dashboard
    Properties:
      DashboardBody: !Sub |
        {"widgets": [{"type": "metric", "properties": {"title": "t", "metrics": [
          ["${MetricsNamespace}", "EstimatedCost", "AgentId", "a", "ModelId", "m"],
          [".", "InputTokens", ".", ".", ".", "."],
          [{"expression": "SEARCH('{${MetricsNamespace},ModelId} MetricName=\"UnpricedTokens\"', 'Sum', 60)"}]]}}]}
"#;

    const C: &str = r#"
Parameters:
  MonitoringLevel: {Type: String, Default: essential}
  Email: {Type: String, Default: ''}
Conditions:
  IsFull: !Equals [!Ref MonitoringLevel, full]
  HasEmail: !Not [!Equals [!Ref Email, '']]
  FullWithEmail: !And [!Condition IsFull, {Condition: HasEmail}]
Resources:
  Always:
    Type: AWS::CloudWatch::Alarm
    Properties:
      Namespace: NS
      MetricName: !If [IsFull, Big, Small]
      EvaluationPeriods: 1
      ComparisonOperator: GreaterThanThreshold
  OnlyFull:
    Type: AWS::CloudWatch::Alarm
    Condition: IsFull
    Properties: {Namespace: NS, MetricName: M, EvaluationPeriods: 1, ComparisonOperator: GreaterThanThreshold}
"#;

    #[test]
    fn conditions_follow_the_parameter_values() {
        let t = Template::parse(C).unwrap();
        let ids = |t: &Template| {
            t.created_alarms().unwrap().into_iter().map(|a| (a.logical_id, a.metric_name)).collect::<Vec<_>>()
        };
        assert_eq!(ids(&t), vec![("Always".to_string(), Some("Small".to_string()))]);
        let full = t.clone().at_level(MetricsLevel::Full);
        assert_eq!(
            ids(&full),
            vec![("Always".to_string(), Some("Big".to_string())), ("OnlyFull".to_string(), Some("M".to_string()))]
        );
        assert_eq!(t.alarms().unwrap().len(), 2, "declared, whatever the level");
        assert!(!full.condition("FullWithEmail").unwrap());
        assert!(full.with_parameter("Email", "a@b.c").condition("FullWithEmail").unwrap());
        assert!(t.condition("Missing").is_err());
    }

    #[test]
    fn select_picks_from_a_split_or_a_list() {
        let t =
            Template::parse("Parameters:\n  A:\n    Type: String\n    Default: 'arn:x:harness/h-1'\nResources: {}\n")
                .unwrap();
        let v = |y: &str| serde_yaml::from_str::<Value>(y).unwrap();
        assert_eq!(t.resolve(&v("!Select [1, !Split ['/', !Ref A]]")), Ok("h-1".to_string()));
        assert_eq!(t.resolve(&v("!Select [0, [a, !Ref A]]")), Ok("a".to_string()));
        assert!(t.resolve(&v("!Select [2, !Split ['/', !Ref A]]")).is_err(), "out of range");
    }

    #[test]
    fn resolves_tags_and_finds_alarm_and_dashboard_metrics() {
        let t = Template::parse(T).unwrap();
        let a = &t.alarms().unwrap()[0];
        assert_eq!(a.alarm_name, "stack-A");
        assert_eq!(a.threshold, Some(5.0));
        assert_eq!(a.dimensions, vec![("FunctionName".to_string(), "<Fn>".to_string())]);
        let refs: Vec<(String, String, Vec<String>)> =
            t.metric_refs().unwrap().into_iter().map(|m| (m.namespace, m.name, m.dimensions)).collect();
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            refs,
            vec![
                ("BedrockUsage".into(), "APIErrors".into(), s(&["FunctionName"])),
                ("BedrockUsage".into(), "EstimatedCost".into(), s(&["AgentId", "ModelId"])),
                ("BedrockUsage".into(), "InputTokens".into(), s(&["AgentId", "ModelId"])),
                ("BedrockUsage".into(), "UnpricedTokens".into(), s(&["ModelId"])),
            ]
        );
    }
}
