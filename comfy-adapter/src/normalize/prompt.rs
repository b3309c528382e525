use super::{id_list, str_field};
use crate::model::prompt::{
    Accepted, InputError, InputErrorKind, NodeError, PromptRejected, RejectionKind,
};
use crate::wire::prompt::{ErrorObject, NodeErrorsWire, PromptErrorBody, PromptOk};
use serde_json::{Map, Value};

/// 200 answer → [`Accepted`].
pub fn accepted(ok: PromptOk) -> Accepted {
    Accepted {
        prompt_id: ok.prompt_id,
        number: ok.number,
        node_errors: node_errors(&ok.node_errors),
    }
}

/// `node_errors` → one [`NodeError`] per node, in the server's order.
/// Entries that are not objects are skipped.
pub fn node_errors(map: &Map<String, Value>) -> Vec<NodeError> {
    map.iter()
        .filter_map(|(node_id, v)| {
            let wire: NodeErrorsWire = serde_json::from_value(v.clone()).ok()?;
            Some(NodeError {
                node_id: node_id.clone(),
                class_type: wire.class_type,
                dependent_outputs: id_list(Some(&Value::Array(wire.dependent_outputs))),
                errors: wire.errors.into_iter().map(input_error).collect(),
            })
        })
        .collect()
}

fn input_error(e: ErrorObject) -> InputError {
    InputError {
        kind: InputErrorKind::from_server(&e.kind),
        input_name: str_field(&e.extra_info, "input_name"),
        received_value: e.extra_info.get("received_value").cloned(),
        server_type: e.kind,
        message: e.message,
        details: e.details,
        extra_info: e.extra_info,
    }
}

/// A non-200 answer of `POST /prompt` → [`PromptRejected`], or `None` when the
/// body is not ComfyUI's error shape (a 500 page, a proxy error).
pub fn rejection(status: u16, raw: Value) -> Option<PromptRejected> {
    let body: PromptErrorBody = serde_json::from_value(raw.clone()).ok()?;
    let e = body.error;
    let extra_class = e.extra_info.get("class_type");
    let (kind, class_type) = match e.kind.as_str() {
        "no_prompt" => (RejectionKind::NoPrompt, None),
        "invalid_prompt_id" => (RejectionKind::InvalidPromptId, None),
        "prompt_no_outputs" => (RejectionKind::NoOutputs, None),
        "prompt_outputs_failed_validation" => (RejectionKind::OutputsFailedValidation, None),
        // 0.26+: one spelling for both; a null class means "no class_type".
        "missing_node_type" => match extra_class.and_then(Value::as_str) {
            Some(c) => (RejectionKind::UnknownNodeType, Some(c.to_owned())),
            None => (RejectionKind::MissingClassType, None),
        },
        // Before 0.26 the message tells which case it is.
        "invalid_prompt" => {
            if let Some(class) = unknown_class_in_message(&e.message) {
                (RejectionKind::UnknownNodeType, Some(class))
            } else if e.message.contains("class_type") {
                (RejectionKind::MissingClassType, None)
            } else {
                (RejectionKind::InvalidPrompt, None)
            }
        }
        other => (RejectionKind::Other(other.to_owned()), None),
    };
    let node_id = str_field(&e.extra_info, "node_id").or_else(|| node_id_in_details(&e.details));
    Some(PromptRejected {
        kind,
        server_type: e.kind,
        message: e.message,
        details: e.details,
        node_id,
        class_type,
        extra_info: e.extra_info,
        node_errors: node_errors(&body.node_errors),
        status,
        raw,
    })
}

/// "Cannot execute because node DoesNotExist does not exist." → `DoesNotExist`.
fn unknown_class_in_message(msg: &str) -> Option<String> {
    let rest = msg.split_once("because node ")?.1;
    let class = rest.split_once(" does not exist")?.0;
    (!class.is_empty()).then(|| class.to_owned())
}

/// "Node ID '#1'" → `1`.
fn node_id_in_details(details: &str) -> Option<String> {
    let rest = details.split_once("Node ID '#")?.1;
    let id = rest.split_once('\'')?.0;
    (!id.is_empty()).then(|| id.to_owned())
}
