//! The operations this action group offers, once, for both event forms: an OpenAPI path and
//! method (the schema in `openapi/tickets.json`, whose `operationId`s are the function names) and
//! a function name (function details).

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

/// One operation as both forms name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub action: Action,
    /// Upper-case HTTP method of the OpenAPI form.
    pub method: &'static str,
    /// Path template of the OpenAPI form.
    pub path: &'static str,
    /// Parameters the handler reads (path, query or function parameters).
    pub parameters: &'static [&'static str],
}

impl Route {
    /// The function name of the function-details form.
    pub fn function(&self) -> &'static str {
        self.action.name()
    }
}

/// Every operation the handler serves.
pub const ROUTES: &[Route] = &[
    Route {
        action: Action::SearchTickets,
        method: "GET",
        path: "/tickets/search",
        parameters: &["query", "jql", "status", "limit"],
    },
    Route { action: Action::GetTicket, method: "GET", path: "/tickets/{key}", parameters: &["key"] },
    Route {
        action: Action::MyUsage,
        method: "GET",
        path: "/usage/me",
        parameters: &["period", "start_date", "end_date"],
    },
];

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
            let route = ROUTES.iter().find(|r| r.function() == e.function.trim())?;
            Some(Matched { route, path_parameters: Vec::new() })
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
    fn routes_are_unique() {
        for (i, a) in ROUTES.iter().enumerate() {
            for b in &ROUTES[i + 1..] {
                assert_ne!((a.method, a.path), (b.method, b.path));
                assert_ne!(a.function(), b.function());
            }
        }
    }
}
