//! Mitigation actions, audit mitigation actions tasks, and tags.

use palisade_engine::{Engine, Scope};
use palisade_model::Request;

use super::{encode, Handled};

pub(super) async fn dispatch(engine: &Engine, scope: &Scope, request: Request) -> Handled {
    Ok(match request {
        Request::CreateMitigationAction(i) => {
            encode(engine.create_mitigation_action(scope, i).await)
        }
        Request::DeleteMitigationAction(i) => {
            encode(engine.delete_mitigation_action(scope, i).await)
        }
        Request::DescribeMitigationAction(i) => {
            encode(engine.describe_mitigation_action(scope, i).await)
        }
        Request::ListMitigationActions(i) => encode(engine.list_mitigation_actions(scope, i).await),
        Request::UpdateMitigationAction(i) => {
            encode(engine.update_mitigation_action(scope, i).await)
        }
        Request::StartAuditMitigationActionsTask(i) => {
            encode(engine.start_audit_mitigation_actions_task(scope, i).await)
        }
        Request::DescribeAuditMitigationActionsTask(i) => encode(
            engine
                .describe_audit_mitigation_actions_task(scope, i)
                .await,
        ),
        Request::ListAuditMitigationActionsTasks(i) => {
            encode(engine.list_audit_mitigation_actions_tasks(scope, i).await)
        }
        Request::ListAuditMitigationActionsExecutions(i) => encode(
            engine
                .list_audit_mitigation_actions_executions(scope, i)
                .await,
        ),
        Request::CancelAuditMitigationActionsTask(i) => {
            encode(engine.cancel_audit_mitigation_actions_task(scope, i).await)
        }
        Request::ListTagsForResource(i) => encode(engine.list_tags_for_resource(scope, i).await),
        Request::TagResource(i) => encode(engine.tag_resource(scope, i).await),
        Request::UntagResource(i) => encode(engine.untag_resource(scope, i).await),
        other => return Err(other),
    })
}
