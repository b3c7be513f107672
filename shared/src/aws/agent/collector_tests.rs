//! TurnCollector, fed SDK types the way the SDK's deserializer produces them.

use std::time::Instant;

use aws_sdk_bedrockagentruntime::primitives::Blob;
use aws_sdk_bedrockagentruntime::types::{
    ActionGroupInvocationInput, ApiInvocationInput, Attribution, Citation, FailureTrace, FilePart,
    FunctionInvocationInput, GuardrailAction, GuardrailTrace, InvocationInput, InvocationInputMember, InvocationType,
    KnowledgeBaseLookupInput, KnowledgeBaseLookupOutput, Metadata, ModelInvocationInput, Observation,
    OrchestrationModelInvocationOutput, OrchestrationTrace, OutputFile, PayloadPart,
    PostProcessingModelInvocationOutput, PostProcessingTrace, PreProcessingModelInvocationOutput,
    PreProcessingParsedResponse, PreProcessingTrace, PromptType, Rationale, ResponseStream,
    RetrievalResultConfluenceLocation, RetrievalResultContent, RetrievalResultLocation, RetrievalResultLocationType,
    RetrievalResultS3Location, RetrievalResultWebLocation, RetrievedReference, ReturnControlPayload,
    RoutingClassifierModelInvocationOutput, RoutingClassifierTrace, Trace, TracePart, Type, Usage,
};
use aws_smithy_types::{DateTime, Document, Number};

use super::*;

const HAIKU: &str = "anthropic.claude-3-haiku-20240307-v1:0";
const SONNET: &str = "us.anthropic.claude-3-5-sonnet-20241022-v2:0";

fn trace(trace: Trace) -> ResponseStream {
    ResponseStream::Trace(
        TracePart::builder()
            .agent_id("AGENT12345")
            .agent_alias_id("TSTALIASID")
            .session_id("T1-C1-1.2")
            .trace(trace)
            .build(),
    )
}

fn chunk(text: &str) -> ResponseStream {
    ResponseStream::Chunk(PayloadPart::builder().bytes(Blob::new(text.as_bytes())).build())
}

fn model_input(kind: PromptType, trace_id: &str, model: Option<&str>) -> ModelInvocationInput {
    ModelInvocationInput::builder()
        .trace_id(trace_id)
        .r#type(kind)
        .text("{\"system\":\"...\"}")
        .set_foundation_model(model.map(str::to_owned))
        .build()
}

fn usage(input: i32, output: i32, total_ms: Option<i64>) -> Metadata {
    Metadata::builder()
        .usage(Usage::builder().input_tokens(input).output_tokens(output).build())
        .set_total_time_ms(total_ms)
        .build()
}

fn pre_input(trace_id: &str, model: Option<&str>) -> ResponseStream {
    trace(Trace::PreProcessingTrace(PreProcessingTrace::ModelInvocationInput(model_input(
        PromptType::PreProcessing,
        trace_id,
        model,
    ))))
}

fn pre_output(trace_id: &str, rationale: Option<&str>, metadata: Metadata) -> ResponseStream {
    let parsed =
        PreProcessingParsedResponse::builder().set_rationale(rationale.map(str::to_owned)).is_valid(true).build();
    trace(Trace::PreProcessingTrace(PreProcessingTrace::ModelInvocationOutput(
        PreProcessingModelInvocationOutput::builder()
            .trace_id(trace_id)
            .parsed_response(parsed)
            .metadata(metadata)
            .build(),
    )))
}

fn orch_input(trace_id: &str, model: Option<&str>) -> ResponseStream {
    trace(Trace::OrchestrationTrace(OrchestrationTrace::ModelInvocationInput(model_input(
        PromptType::Orchestration,
        trace_id,
        model,
    ))))
}

fn orch_output(trace_id: &str, metadata: Metadata) -> ResponseStream {
    trace(Trace::OrchestrationTrace(OrchestrationTrace::ModelInvocationOutput(
        OrchestrationModelInvocationOutput::builder().trace_id(trace_id).metadata(metadata).build(),
    )))
}

fn orch_rationale(trace_id: &str, text: &str) -> ResponseStream {
    trace(Trace::OrchestrationTrace(OrchestrationTrace::Rationale(
        Rationale::builder().trace_id(trace_id).text(text).build(),
    )))
}

fn kb_lookup(trace_id: &str, kb: &str, query: &str) -> ResponseStream {
    trace(Trace::OrchestrationTrace(OrchestrationTrace::InvocationInput(
        InvocationInput::builder()
            .trace_id(trace_id)
            .invocation_type(InvocationType::KnowledgeBase)
            .knowledge_base_lookup_input(KnowledgeBaseLookupInput::builder().knowledge_base_id(kb).text(query).build())
            .build(),
    )))
}

fn s3_ref(uri: &str, page: Option<f64>) -> RetrievedReference {
    let location = RetrievalResultLocation::builder()
        .r#type(RetrievalResultLocationType::S3)
        .s3_location(RetrievalResultS3Location::builder().uri(uri).build())
        .build()
        .unwrap();
    let mut b = RetrievedReference::builder()
        .content(RetrievalResultContent::builder().text("Passwords rotate every 90 days.").build())
        .location(location)
        .metadata("x-amz-bedrock-kb-source-uri", Document::String(uri.into()));
    if let Some(p) = page {
        b = b.metadata(super::super::sources::PAGE_NUMBER_KEY, Document::Number(Number::Float(p)));
    }
    b.build()
}

fn web_ref(url: &str) -> RetrievedReference {
    let location = RetrievalResultLocation::builder()
        .r#type(RetrievalResultLocationType::Web)
        .web_location(RetrievalResultWebLocation::builder().url(url).build())
        .build()
        .unwrap();
    RetrievedReference::builder().location(location).build()
}

fn confluence_ref(url: &str) -> RetrievedReference {
    let location = RetrievalResultLocation::builder()
        .r#type(RetrievalResultLocationType::Confluence)
        .confluence_location(RetrievalResultConfluenceLocation::builder().url(url).build())
        .build()
        .unwrap();
    RetrievedReference::builder().location(location).build()
}

fn kb_output(trace_id: &str, refs: Vec<RetrievedReference>) -> ResponseStream {
    trace(Trace::OrchestrationTrace(OrchestrationTrace::Observation(
        Observation::builder()
            .trace_id(trace_id)
            .r#type(Type::KnowledgeBase)
            .knowledge_base_lookup_output(
                KnowledgeBaseLookupOutput::builder().set_retrieved_references(Some(refs)).build(),
            )
            .build(),
    )))
}

fn collect(events: Vec<ResponseStream>) -> AgentTurn {
    let mut c = TurnCollector::new(Instant::now());
    for e in events {
        c.push(e);
    }
    c.finish()
}

#[test]
fn text_and_first_token() {
    let turn = collect(vec![
        ResponseStream::Chunk(PayloadPart::builder().bytes(Blob::new(Vec::new())).build()),
        chunk("**Hello** "),
        chunk("world"),
    ]);
    assert_eq!(turn.text, "**Hello** world");
    assert!(turn.first_token_ms.is_some());

    let silent = collect(vec![pre_input("t-pre-0", Some(HAIKU))]);
    assert_eq!(silent.first_token_ms, None);
    assert_eq!(silent.text, "");
}

#[test]
fn utf8_split_across_chunks_is_reassembled() {
    let euro = "€".as_bytes();
    let turn = collect(vec![
        ResponseStream::Chunk(PayloadPart::builder().bytes(Blob::new(&euro[..1])).build()),
        ResponseStream::Chunk(PayloadPart::builder().bytes(Blob::new(&euro[1..])).build()),
    ]);
    assert_eq!(turn.text, "€");
}

#[test]
fn rationale_prefers_pre_processing_then_first_orchestration() {
    let turn = collect(vec![
        pre_input("t-pre-0", Some(HAIKU)),
        pre_output("t-pre-0", Some("The user asks about VPN setup."), usage(10, 5, None)),
        orch_rationale("t-0", "I should search the knowledge base."),
    ]);
    assert_eq!(turn.rationale.as_deref(), Some("The user asks about VPN setup."));

    // No pre-processing rationale (disabled, or empty): the first orchestration rationale.
    let turn = collect(vec![
        pre_output("t-pre-0", Some("  "), usage(10, 5, None)),
        orch_rationale("t-0", "I should search the knowledge base."),
        orch_rationale("t-1", "Now I can answer."),
    ]);
    assert_eq!(turn.rationale.as_deref(), Some("I should search the knowledge base."));

    assert_eq!(collect(vec![chunk("hi")]).rationale, None);
}

#[test]
fn knowledge_bases_queries_and_sources_are_deduplicated_with_pages() {
    let kb = "KBPWD12345";
    let handbook = "s3://acme-kb-docs/security/Security-Handbook-2024.pdf";
    let web = "https://docs.aws.amazon.com/IAM/latest/UserGuide/id_credentials_passwords.html";
    let wiki = "https://acme.atlassian.net/wiki/spaces/SEC/pages/123456/Password+Rotation";
    let citation = Citation::builder()
        .retrieved_references(s3_ref(handbook, Some(14.0)))
        .retrieved_references(s3_ref(handbook, Some(15.0)))
        .retrieved_references(web_ref(web))
        .build();
    let turn = collect(vec![
        kb_lookup("t-0", kb, "password rotation policy"),
        kb_output("t-0", vec![s3_ref(handbook, Some(14.0)), web_ref(web), confluence_ref(wiki)]),
        kb_lookup("t-1", kb, "password rotation policy"),
        kb_lookup("t-1", "KBOTHER999", "service account password rotation"),
        kb_output("t-1", vec![s3_ref(handbook, Some(14.0)), s3_ref(handbook, None)]),
        ResponseStream::Chunk(
            PayloadPart::builder()
                .bytes(Blob::new("Rotate every 90 days."))
                .attribution(Attribution::builder().citations(citation).build())
                .build(),
        ),
    ]);
    assert_eq!(turn.knowledge_bases, vec![kb, "KBOTHER999"]);
    assert_eq!(turn.search_queries, vec!["password rotation policy", "service account password rotation"]);
    assert_eq!(
        turn.sources,
        vec![
            "Security-Handbook-2024.pdf (p. 14)".to_string(),
            web.into(),
            wiki.into(),
            "Security-Handbook-2024.pdf".into(),
            "Security-Handbook-2024.pdf (p. 15)".into(),
        ]
    );
}

#[test]
fn routing_classifier_inputs_count_too() {
    let turn = collect(vec![
        trace(Trace::RoutingClassifierTrace(RoutingClassifierTrace::InvocationInput(
            InvocationInput::builder()
                .trace_id("r-0")
                .knowledge_base_lookup_input(
                    KnowledgeBaseLookupInput::builder().knowledge_base_id("KBROUTE001").text("vpn").build(),
                )
                .build(),
        ))),
        trace(Trace::RoutingClassifierTrace(RoutingClassifierTrace::ModelInvocationInput(model_input(
            PromptType::RoutingClassifier,
            "r-0",
            Some(HAIKU),
        )))),
        trace(Trace::RoutingClassifierTrace(RoutingClassifierTrace::ModelInvocationOutput(
            RoutingClassifierModelInvocationOutput::builder()
                .trace_id("r-0")
                .metadata(usage(300, 12, Some(240)))
                .build(),
        ))),
    ]);
    assert_eq!(turn.knowledge_bases, vec!["KBROUTE001"]);
    assert_eq!(turn.search_queries, vec!["vpn"]);
    assert_eq!(turn.model_calls.len(), 1);
    assert_eq!(turn.model_calls[0].step, "routing_classifier");
    assert_eq!(turn.model_calls[0].input_tokens, 300);
}

#[test]
fn action_groups_follow_one_naming_convention() {
    let action = |b: aws_sdk_bedrockagentruntime::types::builders::ActionGroupInvocationInputBuilder| {
        trace(Trace::OrchestrationTrace(OrchestrationTrace::InvocationInput(
            InvocationInput::builder()
                .trace_id("t-0")
                .invocation_type(InvocationType::ActionGroup)
                .action_group_invocation_input(b.build())
                .build(),
        )))
    };
    let turn = collect(vec![
        action(
            ActionGroupInvocationInput::builder()
                .action_group_name("TicketActions")
                .verb("get")
                .api_path("/tickets/search"),
        ),
        action(
            ActionGroupInvocationInput::builder()
                .action_group_name("TicketActions")
                .verb("get")
                .api_path("/tickets/search"),
        ),
        action(ActionGroupInvocationInput::builder().action_group_name("UsageActions").function("my_usage")),
        action(ActionGroupInvocationInput::builder().action_group_name("CodeInterpreterAction")),
    ]);
    assert_eq!(
        turn.action_groups,
        vec!["TicketActions/tickets/search", "UsageActions/my_usage", "CodeInterpreterAction"]
    );
}

#[test]
fn model_calls_pair_input_and_output_by_trace_id() {
    let start = DateTime::from_millis(1_713_534_720_000);
    let end = DateTime::from_millis(1_713_534_721_250);
    let timed = Metadata::builder()
        .start_time(start)
        .end_time(end)
        .usage(Usage::builder().input_tokens(2048).output_tokens(310).build())
        .build();
    let turn = collect(vec![
        pre_input("t-pre-0", Some(HAIKU)),
        orch_input("t-0", Some(SONNET)),
        pre_output("t-pre-0", None, usage(512, 64, Some(820))),
        orch_output("t-0", timed),
        orch_input("t-1", Some(SONNET)),
        orch_output("t-1", usage(2900, 180, None)),
        trace(Trace::PostProcessingTrace(PostProcessingTrace::ModelInvocationInput(model_input(
            PromptType::PostProcessing,
            "t-post-0",
            None,
        )))),
        trace(Trace::PostProcessingTrace(PostProcessingTrace::ModelInvocationOutput(
            PostProcessingModelInvocationOutput::builder()
                .trace_id("t-post-0")
                .metadata(usage(700, 90, Some(400)))
                .build(),
        ))),
    ]);
    let calls: Vec<(&str, &str, u64, u64, u64)> = turn
        .model_calls
        .iter()
        .map(|c| (c.step.as_str(), c.model_id.as_str(), c.input_tokens, c.output_tokens, c.latency_ms))
        .collect();
    assert_eq!(
        calls,
        vec![
            ("pre_processing", HAIKU, 512, 64, 820),
            ("orchestration", SONNET, 2048, 310, 1250),
            ("orchestration", SONNET, 2900, 180, 0),
            ("post_processing", UNKNOWN_MODEL, 700, 90, 400),
        ]
    );
    assert_eq!(turn.tokens(), (512 + 2048 + 2900 + 700, 64 + 310 + 180 + 90));
    assert_eq!(turn.model_ids(), vec![HAIKU, SONNET, UNKNOWN_MODEL]);
}

#[test]
fn orphan_output_is_still_a_call_and_spent_includes_open_calls() {
    let mut c = TurnCollector::new(Instant::now());
    c.push(orch_output("t-9", usage(1500, 200, Some(900))));
    c.push(orch_input("t-10", Some(SONNET)));
    let spent = c.spent();
    assert_eq!(spent.len(), 2);
    assert_eq!(spent[0].model_id, UNKNOWN_MODEL);
    assert_eq!((spent[0].input_tokens, spent[0].output_tokens), (1500, 200));
    assert_eq!(spent[0].step, "orchestration");
    // Opened but not answered yet: counted, with no tokens known.
    assert_eq!(spent[1].model_id, SONNET);
    assert_eq!((spent[1].input_tokens, spent[1].output_tokens), (0, 0));

    // An output of the same trace id but another step does not complete it.
    c.push(pre_output("t-10", None, usage(5, 5, None)));
    c.push(orch_output("t-10", usage(1800, 250, None)));
    let turn = c.finish();
    assert_eq!(turn.model_calls.len(), 3);
    assert_eq!(turn.model_calls[1].model_id, SONNET);
    assert_eq!(turn.model_calls[1].output_tokens, 250);
    assert_eq!(turn.model_calls[2].step, "pre_processing");
    assert_eq!(turn.model_calls[2].model_id, UNKNOWN_MODEL);
}

#[test]
fn guardrail_keeps_the_strongest_action() {
    let guardrail = |action: GuardrailAction| {
        trace(Trace::GuardrailTrace(GuardrailTrace::builder().trace_id("g-0").action(action).build()))
    };
    let turn = collect(vec![
        guardrail(GuardrailAction::None),
        guardrail(GuardrailAction::Intervened),
        guardrail(GuardrailAction::None),
    ]);
    assert_eq!(turn.guardrail_action.as_deref(), Some("INTERVENED"));
    let turn = collect(vec![guardrail(GuardrailAction::None)]);
    assert_eq!(turn.guardrail_action.as_deref(), Some("NONE"));
    assert_eq!(collect(vec![chunk("x")]).guardrail_action, None);
}

#[test]
fn failure_trace_keeps_the_first_failure() {
    let failure = |code: i32, reason: &str| {
        trace(Trace::FailureTrace(
            FailureTrace::builder().trace_id("f-0").failure_code(code).failure_reason(reason).build(),
        ))
    };
    let turn = collect(vec![
        failure(424, "Lambda function arn:aws:lambda:us-east-1:123456789012:function:tickets timed out"),
        failure(500, "later"),
    ]);
    let f = turn.failure.unwrap();
    assert_eq!(f.code, Some(424));
    assert!(f.reason.contains("timed out"));
    assert_eq!(turn.text, "");
}

#[test]
fn return_control_and_files() {
    let payload = ReturnControlPayload::builder()
        .invocation_id("inv-7f3a")
        .invocation_inputs(InvocationInputMember::FunctionInvocationInput(
            FunctionInvocationInput::builder().action_group("UsageActions").function("my_usage").build().unwrap(),
        ))
        .invocation_inputs(InvocationInputMember::ApiInvocationInput(
            ApiInvocationInput::builder()
                .action_group("TicketActions")
                .http_method("GET")
                .api_path("/tickets/search")
                .build()
                .unwrap(),
        ))
        .build();
    let bare = ReturnControlPayload::builder().invocation_id("inv-9").build();
    let files = FilePart::builder()
        .files(
            OutputFile::builder()
                .name("chart.png")
                .r#type("image/png")
                .bytes(Blob::new(vec![0x89, b'P', b'N', b'G']))
                .build(),
        )
        .build();
    let turn = collect(vec![
        ResponseStream::ReturnControl(payload),
        ResponseStream::ReturnControl(bare),
        ResponseStream::Files(files),
    ]);
    assert_eq!(turn.return_control, vec!["UsageActions/my_usage", "TicketActions/tickets/search", "inv-9"]);
    assert_eq!(turn.files.len(), 1);
    assert_eq!(turn.files[0].name, "chart.png");
    assert_eq!(turn.files[0].media_type, "image/png");
    assert_eq!(turn.files[0].bytes, vec![0x89, b'P', b'N', b'G']);
}

#[test]
fn unknown_events_are_tolerated() {
    let turn = collect(vec![
        // Unknown variants cannot be built outside the SDK; a trace part without a trace can.
        ResponseStream::Trace(TracePart::builder().build()),
        chunk("still here"),
    ]);
    assert_eq!(turn.text, "still here");
}
