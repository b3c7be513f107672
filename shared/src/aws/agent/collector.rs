//! Reading the Bedrock Agent (Classic) event stream into an AgentTurn.
//!
//! [`TurnCollector`] is fed the stream's items one by one, so a caller that loses the stream
//! half-way can still ask what was spent ([`TurnCollector::spent`]). Conventions:
//!
//! - Action groups are named `group` alone, `group/api/path` for OpenAPI action groups (the
//!   apiPath without its leading slash: `TicketActions/tickets/search`) and `group/function`
//!   for function-details action groups; `return_control` entries use the same names (the
//!   invocation id when the payload names no action).
//! - A model call is opened by a `modelInvocationInput` and completed by the
//!   `modelInvocationOutput` of the same trace kind, agent and traceId. An output nobody
//!   opened is still a call (model `unknown`): usage is never dropped. An input whose output
//!   never came is kept with zero tokens, since the invocation was still billed.
//! - Sources are named by the `sources` module (S3 basename, URL, ... with ` (p. N)`) and
//!   de-duplicated in first-seen order.

use std::time::Instant;

use aws_sdk_bedrockagentruntime::types::{
    ActionGroupInvocationInput, FailureTrace, FilePart, GuardrailTrace, InvocationInput, InvocationInputMember,
    Metadata, ModelInvocationInput, Observation, OrchestrationTrace, PayloadPart, PostProcessingTrace,
    PreProcessingTrace, ResponseStream, RetrievedReference, ReturnControlPayload, RoutingClassifierTrace, Trace,
    TracePart,
};

use crate::domain::{AgentFailure, AgentFile, AgentTurn, ModelCall};

/// The model id recorded when no `modelInvocationInput` named the foundation model.
pub const UNKNOWN_MODEL: &str = "unknown";

/// Which part of the agent's run a model call belongs to (the trace kind, snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    PreProcessing,
    Orchestration,
    PostProcessing,
    RoutingClassifier,
}

impl Step {
    fn as_str(self) -> &'static str {
        match self {
            Step::PreProcessing => "pre_processing",
            Step::Orchestration => "orchestration",
            Step::PostProcessing => "post_processing",
            Step::RoutingClassifier => "routing_classifier",
        }
    }
}

/// One model invocation being assembled from its input and output traces.
#[derive(Debug)]
struct PendingCall {
    agent_id: Option<String>,
    step: Step,
    trace_id: Option<String>,
    /// The output arrived (usage and latency are final).
    completed: bool,
    call: ModelCall,
}

/// Folds InvokeAgent stream items into an [`AgentTurn`].
#[derive(Debug)]
pub struct TurnCollector {
    started: Instant,
    /// Raw answer bytes: a chunk boundary may split a UTF-8 sequence, so decode at the end.
    text: Vec<u8>,
    first_token_ms: Option<u64>,
    sources: Vec<String>,
    pre_processing_rationale: Option<String>,
    orchestration_rationale: Option<String>,
    knowledge_bases: Vec<String>,
    search_queries: Vec<String>,
    action_groups: Vec<String>,
    calls: Vec<PendingCall>,
    guardrail_action: Option<String>,
    failure: Option<AgentFailure>,
    files: Vec<AgentFile>,
    return_control: Vec<String>,
}

impl TurnCollector {
    /// A collector for a turn whose request was sent at `started` (for `first_token_ms`).
    pub fn new(started: Instant) -> Self {
        TurnCollector {
            started,
            text: Vec::new(),
            first_token_ms: None,
            sources: Vec::new(),
            pre_processing_rationale: None,
            orchestration_rationale: None,
            knowledge_bases: Vec::new(),
            search_queries: Vec::new(),
            action_groups: Vec::new(),
            calls: Vec::new(),
            guardrail_action: None,
            failure: None,
            files: Vec::new(),
            return_control: Vec::new(),
        }
    }

    /// Takes one item of the stream into account.
    pub fn push(&mut self, event: ResponseStream) {
        match event {
            ResponseStream::Chunk(part) => self.on_chunk(part),
            ResponseStream::Trace(part) => self.on_trace(part),
            ResponseStream::ReturnControl(payload) => self.on_return_control(payload),
            ResponseStream::Files(part) => self.on_files(part),
            other => tracing::warn!(event = ?other, "unknown InvokeAgent stream event ignored"),
        }
    }

    /// The model calls seen so far, completed or not (what the turn has spent).
    pub fn spent(&self) -> Vec<ModelCall> {
        self.calls.iter().map(|p| p.call.clone()).collect()
    }

    /// The turn as the stream described it.
    pub fn finish(self) -> AgentTurn {
        for open in self.calls.iter().filter(|p| !p.completed) {
            tracing::warn!(
                step = open.step.as_str(),
                trace_id = open.trace_id.as_deref().unwrap_or(""),
                model_id = %open.call.model_id,
                "model invocation without an output trace: recorded with zero tokens"
            );
        }
        AgentTurn {
            text: String::from_utf8_lossy(&self.text).into_owned(),
            sources: self.sources,
            rationale: self.pre_processing_rationale.or(self.orchestration_rationale),
            knowledge_bases: self.knowledge_bases,
            search_queries: self.search_queries,
            action_groups: self.action_groups,
            model_calls: self.calls.into_iter().map(|p| p.call).collect(),
            guardrail_action: self.guardrail_action,
            failure: self.failure,
            files: self.files,
            return_control: self.return_control,
            first_token_ms: self.first_token_ms,
            usage_unreported: false,
            unknown_events: Vec::new(),
        }
    }

    fn on_chunk(&mut self, part: PayloadPart) {
        if let Some(bytes) = part.bytes {
            let bytes = bytes.into_inner();
            if !bytes.is_empty() {
                if self.first_token_ms.is_none() {
                    let ms = self.started.elapsed().as_millis();
                    self.first_token_ms = Some(u64::try_from(ms).unwrap_or(u64::MAX));
                }
                self.text.extend_from_slice(&bytes);
            }
        }
        let citations = part.attribution.and_then(|a| a.citations);
        for citation in citations.unwrap_or_default() {
            self.add_sources(citation.retrieved_references.as_deref());
        }
    }

    fn on_trace(&mut self, part: TracePart) {
        let agent_id = part.agent_id;
        let Some(trace) = part.trace else {
            tracing::debug!("trace event without a trace");
            return;
        };
        match trace {
            Trace::PreProcessingTrace(t) => match t {
                PreProcessingTrace::ModelInvocationInput(input) => {
                    self.model_input(agent_id, Step::PreProcessing, input)
                }
                PreProcessingTrace::ModelInvocationOutput(output) => {
                    let rationale = output.parsed_response.and_then(|p| p.rationale);
                    if self.pre_processing_rationale.is_none() {
                        self.pre_processing_rationale = non_empty(rationale);
                    }
                    self.model_output(agent_id, Step::PreProcessing, output.trace_id, output.metadata);
                }
                other => tracing::warn!(trace = ?other, "unknown preProcessingTrace member ignored"),
            },
            Trace::OrchestrationTrace(t) => match t {
                OrchestrationTrace::ModelInvocationInput(input) => {
                    self.model_input(agent_id, Step::Orchestration, input)
                }
                OrchestrationTrace::ModelInvocationOutput(output) => {
                    self.model_output(agent_id, Step::Orchestration, output.trace_id, output.metadata)
                }
                OrchestrationTrace::Rationale(rationale) => {
                    if self.orchestration_rationale.is_none() {
                        self.orchestration_rationale = non_empty(rationale.text);
                    }
                }
                OrchestrationTrace::InvocationInput(input) => self.invocation_input(input),
                OrchestrationTrace::Observation(observation) => self.observation(observation),
                other => tracing::warn!(trace = ?other, "unknown orchestrationTrace member ignored"),
            },
            Trace::PostProcessingTrace(t) => match t {
                PostProcessingTrace::ModelInvocationInput(input) => {
                    self.model_input(agent_id, Step::PostProcessing, input)
                }
                PostProcessingTrace::ModelInvocationOutput(output) => {
                    self.model_output(agent_id, Step::PostProcessing, output.trace_id, output.metadata)
                }
                other => tracing::warn!(trace = ?other, "unknown postProcessingTrace member ignored"),
            },
            Trace::RoutingClassifierTrace(t) => match t {
                RoutingClassifierTrace::ModelInvocationInput(input) => {
                    self.model_input(agent_id, Step::RoutingClassifier, input)
                }
                RoutingClassifierTrace::ModelInvocationOutput(output) => {
                    self.model_output(agent_id, Step::RoutingClassifier, output.trace_id, output.metadata)
                }
                RoutingClassifierTrace::InvocationInput(input) => self.invocation_input(input),
                RoutingClassifierTrace::Observation(observation) => self.observation(observation),
                other => {
                    tracing::warn!(trace = ?other, "unknown routingClassifierTrace member ignored")
                }
            },
            Trace::GuardrailTrace(t) => self.guardrail(t),
            Trace::FailureTrace(t) => self.failure(t),
            // Custom orchestration reports free-text events and no model usage.
            Trace::CustomOrchestrationTrace(t) => {
                tracing::debug!(trace_id = t.trace_id.as_deref().unwrap_or(""), "custom orchestration trace")
            }
            other => tracing::warn!(trace = ?other, "unknown trace kind ignored"),
        }
    }

    fn model_input(&mut self, agent_id: Option<String>, step: Step, input: ModelInvocationInput) {
        let model_id = non_empty(input.foundation_model).unwrap_or_else(|| UNKNOWN_MODEL.into());
        self.calls.push(PendingCall {
            agent_id,
            step,
            trace_id: input.trace_id,
            completed: false,
            call: ModelCall { model_id, step: step.as_str().into(), ..ModelCall::default() },
        });
    }

    fn model_output(
        &mut self,
        agent_id: Option<String>,
        step: Step,
        trace_id: Option<String>,
        metadata: Option<Metadata>,
    ) {
        let (input_tokens, output_tokens) = metadata
            .as_ref()
            .and_then(|m| m.usage.as_ref())
            .map(|u| (tokens(u.input_tokens), tokens(u.output_tokens)))
            .unwrap_or_default();
        let latency_ms = metadata.as_ref().map(latency_ms).unwrap_or(0);
        let open = self
            .calls
            .iter_mut()
            .find(|p| !p.completed && p.step == step && p.trace_id == trace_id && p.agent_id == agent_id);
        let pending = match open {
            Some(pending) => pending,
            None => {
                tracing::debug!(
                    step = step.as_str(),
                    trace_id = trace_id.as_deref().unwrap_or(""),
                    "model output without a matching input: recorded with an unknown model"
                );
                self.calls.push(PendingCall {
                    agent_id,
                    step,
                    trace_id,
                    completed: false,
                    call: ModelCall {
                        model_id: UNKNOWN_MODEL.into(),
                        step: step.as_str().into(),
                        ..ModelCall::default()
                    },
                });
                let last = self.calls.len() - 1;
                &mut self.calls[last]
            }
        };
        pending.completed = true;
        pending.call.input_tokens = input_tokens;
        pending.call.output_tokens = output_tokens;
        pending.call.latency_ms = latency_ms;
    }

    fn invocation_input(&mut self, input: InvocationInput) {
        if let Some(lookup) = input.knowledge_base_lookup_input {
            push_unique(&mut self.knowledge_bases, lookup.knowledge_base_id);
            push_unique(&mut self.search_queries, lookup.text);
        }
        if let Some(action) = input.action_group_invocation_input {
            push_unique(&mut self.action_groups, action_group_name(&action));
        }
    }

    fn observation(&mut self, observation: Observation) {
        if let Some(output) = observation.knowledge_base_lookup_output {
            self.add_sources(output.retrieved_references.as_deref());
        }
    }

    fn add_sources(&mut self, references: Option<&[RetrievedReference]>) {
        for reference in references.unwrap_or_default() {
            push_unique(&mut self.sources, super::sources::source_name(reference));
        }
    }

    fn guardrail(&mut self, trace: GuardrailTrace) {
        let Some(action) = trace.action else { return };
        let action = action.as_str().to_owned();
        let stronger = match &self.guardrail_action {
            None => true,
            Some(current) => guardrail_rank(&action) > guardrail_rank(current),
        };
        if stronger {
            self.guardrail_action = Some(action);
        }
    }

    fn failure(&mut self, trace: FailureTrace) {
        let reason = trace.failure_reason.unwrap_or_default();
        tracing::warn!(code = ?trace.failure_code, reason = %reason, "agent reported a failure trace");
        // The first failure is the cause; later ones tend to be its consequences.
        if self.failure.is_none() {
            self.failure = Some(AgentFailure { code: trace.failure_code, reason });
        }
    }

    fn on_return_control(&mut self, payload: ReturnControlPayload) {
        let mut named = false;
        for input in payload.invocation_inputs.unwrap_or_default() {
            let name = match input {
                InvocationInputMember::ApiInvocationInput(api) => {
                    join_action(api.action_group, api.api_path.as_deref())
                }
                InvocationInputMember::FunctionInvocationInput(function) => {
                    join_action(function.action_group, function.function.as_deref())
                }
                other => {
                    tracing::warn!(input = ?other, "unknown returnControl invocation input");
                    continue;
                }
            };
            named = true;
            push_unique(&mut self.return_control, Some(name));
        }
        if !named {
            push_unique(&mut self.return_control, payload.invocation_id);
        }
    }

    fn on_files(&mut self, part: FilePart) {
        for file in part.files.unwrap_or_default() {
            self.files.push(AgentFile {
                name: file.name.unwrap_or_default(),
                media_type: file.r#type.unwrap_or_default(),
                bytes: file.bytes.map(|b| b.into_inner()).unwrap_or_default(),
            });
        }
    }
}

/// `group`, `group/api/path` (OpenAPI) or `group/function` (function details).
fn action_group_name(action: &ActionGroupInvocationInput) -> Option<String> {
    let group = action.action_group_name.clone().unwrap_or_default();
    let detail = action.api_path.as_deref().or(action.function.as_deref());
    let name = join_action(group, detail);
    (!name.is_empty()).then_some(name)
}

fn join_action(group: String, detail: Option<&str>) -> String {
    match detail.map(|d| d.trim().trim_start_matches('/')) {
        Some(d) if !d.is_empty() && !group.is_empty() => format!("{group}/{d}"),
        Some(d) if !d.is_empty() => d.to_owned(),
        _ => group,
    }
}

/// INTERVENED beats anything, anything beats NONE.
fn guardrail_rank(action: &str) -> u8 {
    match action {
        "INTERVENED" => 2,
        "NONE" => 0,
        _ => 1,
    }
}

fn latency_ms(metadata: &Metadata) -> u64 {
    if let Some(total) = metadata.total_time_ms {
        return u64::try_from(total).unwrap_or(0);
    }
    match (metadata.start_time, metadata.end_time) {
        (Some(start), Some(end)) => match (start.to_millis(), end.to_millis()) {
            (Ok(s), Ok(e)) => u64::try_from(e - s).unwrap_or(0),
            _ => 0,
        },
        _ => 0,
    }
}

fn tokens(count: Option<i32>) -> u64 {
    count.and_then(|c| u64::try_from(c).ok()).unwrap_or(0)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.trim().is_empty())
}

fn push_unique(list: &mut Vec<String>, item: Option<String>) {
    if let Some(item) = non_empty(item) {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

#[cfg(test)]
#[path = "collector_tests.rs"]
mod tests;
