//! The operations this action group offers, defined once for every event form: an OpenAPI path
//! and method (the schema in `openapi/tickets.json`, whose `operationId`s are the function names),
//! a function name (function details) and a tool name (AgentCore Gateway, after the target
//! prefix). Names, descriptions and parameters here are the source both schema files are
//! generated from.

use crate::events::ActionGroupEvent;

/// What the agent asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    SearchTickets,
    GetTicket,
    MyUsage,
}

impl Action {
    /// The function name (and OpenAPI operationId); also the `Action` metric dimension.
    pub fn name(self) -> &'static str {
        match self {
            Action::SearchTickets => "searchTickets",
            Action::GetTicket => "getTicket",
            Action::MyUsage => "getMyUsage",
        }
    }
}

/// Where an OpenAPI-form parameter travels (the function form and the gateway send all of them
/// alike, by name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    Path,
    Query,
}

impl Location {
    /// The OpenAPI `in` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Location::Path => "path",
            Location::Query => "query",
        }
    }
}

/// The JSON type a parameter declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Integer,
}

impl Kind {
    /// The JSON Schema `type` value.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Integer => "integer",
        }
    }
}

/// One parameter of an operation, as every schema declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    pub name: &'static str,
    pub location: Location,
    pub kind: Kind,
    pub required: bool,
    /// What the model reads to fill it in.
    pub description: &'static str,
}

const fn query(name: &'static str, kind: Kind, description: &'static str) -> Param {
    Param { name, location: Location::Query, kind, required: false, description }
}

/// One operation, defined once: the OpenAPI document (`openapi/tickets.json`), the AgentCore
/// Gateway tool schema (`tools/agentcore-tools.json`) and the routing of every event form all
/// come from it (see [`crate::schemas`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub action: Action,
    /// Upper-case HTTP method of the OpenAPI form.
    pub method: &'static str,
    /// Path template of the OpenAPI form.
    pub path: &'static str,
    /// The OpenAPI summary.
    pub summary: &'static str,
    /// What the model reads to choose the operation (OpenAPI and tool description).
    pub description: &'static str,
    /// Parameters the handler reads (path, query, function or tool arguments).
    pub parameters: &'static [Param],
}

impl Route {
    /// The function name of the function-details form, the tool name of the gateway form.
    pub fn function(&self) -> &'static str {
        self.action.name()
    }

    /// A declared parameter by name.
    pub fn parameter(&self, name: &str) -> Option<&'static Param> {
        self.parameters.iter().find(|p| p.name == name)
    }
}

/// Every operation the handler serves.
pub const ROUTES: &[Route] = &[
    Route {
        action: Action::SearchTickets,
        method: "GET",
        path: "/tickets/search",
        summary: "Search Jira tickets",
        description: "Search Jira tickets by free text, by JQL, by status, or a combination. Returns the most recently updated matches first, each with key, summary, status, assignee, last update and a link. Use it when the user asks whether a ticket exists about something, or for tickets in a project or state.",
        parameters: &[
            query(
                "query",
                Kind::String,
                "Words to look for in ticket summaries, descriptions and comments, e.g. 'VPN disconnect'.",
            ),
            query(
                "jql",
                Kind::String,
                "A Jira Query Language filter, e.g. 'project = ITSUP AND priority = High'. Only when the user gives one or asks for a precise filter.",
            ),
            query(
                "status",
                Kind::String,
                "Status filter: 'open' (not done), 'to do', 'in progress', 'done', 'any', or an exact status name.",
            ),
            query("limit", Kind::Integer, "How many tickets to return, 1 to 25. Default 10."),
        ],
    },
    Route {
        action: Action::GetTicket,
        method: "GET",
        path: "/tickets/{key}",
        summary: "Get one Jira ticket",
        description: "Get one Jira ticket by its key (like ITSUP-123): summary, status, assignee, last update and a link.",
        parameters: &[Param {
            name: "key",
            location: Location::Path,
            kind: Kind::String,
            required: true,
            description: "The ticket key, like ITSUP-123.",
        }],
    },
    Route {
        action: Action::MyUsage,
        method: "GET",
        path: "/usage/me",
        summary: "The asking user's own usage",
        description: "How much the user who is asking has spent (estimated USD) and how many tokens they used, today, this month, or over a period. It always answers for the person asking; it cannot look up anybody else.",
        parameters: &[
            query(
                "period",
                Kind::String,
                "One of today, this_month, yesterday, last_7_days, last_30_days, last_month. Leave out for today and this month together.",
            ),
            query("start_date", Kind::String, "First day of a custom period, YYYY-MM-DD (UTC)."),
            query("end_date", Kind::String, "Last day of a custom period, YYYY-MM-DD (UTC). Default today."),
        ],
    },
];

/// The route of a function (function-details form) or tool (gateway form, prefix stripped).
pub fn find_function(name: &str) -> Option<&'static Route> {
    ROUTES.iter().find(|r| r.function() == name.trim())
}

/// A matched operation and the path parameters a concrete path carried (Bedrock sends the
/// template, e.g. `/tickets/{key}`, with `key` among the parameters; a concrete path such as
/// `/tickets/ABC-1` is accepted too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matched {
    pub route: &'static Route,
    pub path_parameters: Vec<(String, String)>,
}

/// The route an event asks for, if the handler serves it.
pub fn find(event: &ActionGroupEvent) -> Option<Matched> {
    match event {
        ActionGroupEvent::Function(e) => {
            find_function(&e.function).map(|route| Matched { route, path_parameters: Vec::new() })
        }
        ActionGroupEvent::Api(e) => {
            let method = e.http_method.trim();
            let path = e.api_path.trim();
            let candidates = || ROUTES.iter().filter(|r| r.method.eq_ignore_ascii_case(method));
            if let Some(route) = candidates().find(|r| r.path == path) {
                return Some(Matched { route, path_parameters: Vec::new() });
            }
            candidates().find_map(|route| {
                match_template(route.path, path).map(|path_parameters| Matched { route, path_parameters })
            })
        }
    }
}

/// Matches a concrete path against a template; `{name}` segments capture one non-empty segment.
fn match_template(template: &str, path: &str) -> Option<Vec<(String, String)>> {
    let t: Vec<&str> = template.trim_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut captured = Vec::new();
    for (ts, ps) in t.iter().zip(&p) {
        match ts.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(name) if !ps.is_empty() => captured.push((name.to_string(), ps.to_string())),
            Some(_) => return None,
            None if ts == ps => {}
            None => return None,
        }
    }
    Some(captured)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(method: &str, path: &str) -> ActionGroupEvent {
        serde_json::from_value(serde_json::json!({"actionGroup": "A", "apiPath": path, "httpMethod": method})).unwrap()
    }

    fn function(name: &str) -> ActionGroupEvent {
        serde_json::from_value(serde_json::json!({"actionGroup": "A", "function": name})).unwrap()
    }

    #[test]
    fn finds_routes_in_both_forms() {
        assert_eq!(find(&api("GET", "/tickets/search")).unwrap().route.action, Action::SearchTickets);
        assert_eq!(find(&api("get", "/tickets/{key}")).unwrap().route.action, Action::GetTicket);
        let concrete = find(&api("GET", "/tickets/ITSUP-42")).unwrap();
        assert_eq!(concrete.route.action, Action::GetTicket);
        assert_eq!(concrete.path_parameters, vec![("key".to_string(), "ITSUP-42".to_string())]);
        // The literal path wins over the template.
        assert!(find(&api("GET", "/tickets/search")).unwrap().path_parameters.is_empty());
        assert_eq!(find(&api("GET", "/usage/me")).unwrap().route.action, Action::MyUsage);
        assert!(find(&api("POST", "/tickets/search")).is_none());
        assert!(find(&api("GET", "/tickets")).is_none());
        assert!(find(&api("GET", "/tickets/a/b")).is_none());
        assert!(find(&api("GET", "/tickets//")).is_none());

        assert_eq!(find(&function("searchTickets")).unwrap().route.action, Action::SearchTickets);
        assert_eq!(find(&function("getTicket")).unwrap().route.action, Action::GetTicket);
        assert_eq!(find(&function("getMyUsage")).unwrap().route.action, Action::MyUsage);
        assert!(find(&function("deleteTicket")).is_none());
    }

    #[test]
    fn functions_and_gateway_tools_find_the_same_routes() {
        for route in ROUTES {
            assert_eq!(find_function(route.function()), Some(route));
            assert_eq!(find_function(&format!(" {} ", route.function())), Some(route));
            assert_eq!(find(&function(route.function())).map(|m| m.route), Some(route));
        }
        assert_eq!(find_function("getticket"), None, "names are exact");
        assert_eq!(find_function("TicketTools___getTicket"), None, "the gateway prefix is stripped before");
    }

    #[test]
    fn parameters_are_declared_once_and_path_parameters_are_required() {
        for route in ROUTES {
            for (i, p) in route.parameters.iter().enumerate() {
                assert!(route.parameters[i + 1..].iter().all(|q| q.name != p.name), "{}: {}", route.function(), p.name);
                assert_eq!(route.parameter(p.name), Some(p));
                if p.location == Location::Path {
                    assert!(p.required && route.path.contains(&format!("{{{}}}", p.name)), "{}", p.name);
                }
                assert!(!p.description.is_empty());
            }
            assert!(!route.description.is_empty() && !route.summary.is_empty());
        }
    }

    #[test]
    fn routes_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_ne!((a.method, a.path), (b.method, b.path));
                assert_ne!(a.function(), b.function());
            }
        }
    }
}
