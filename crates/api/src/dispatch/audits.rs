//! Audits: the account audit configuration, audit tasks, scheduled audits, findings and
//! suppressions.

use palisade_engine::{Engine, Scope};
use palisade_model::Request;

use super::{encode, Handled};

pub(super) async fn dispatch(engine: &Engine, scope: &Scope, request: Request) -> Handled {
    Ok(match request {
        Request::UpdateAccountAuditConfiguration(i) => {
            encode(engine.update_account_audit_configuration(scope, i).await)
        }
        Request::DescribeAccountAuditConfiguration(i) => {
            encode(engine.describe_account_audit_configuration(scope, i).await)
        }
        Request::DeleteAccountAuditConfiguration(i) => {
            encode(engine.delete_account_audit_configuration(scope, i).await)
        }
        Request::StartOnDemandAuditTask(i) => {
            encode(engine.start_on_demand_audit_task(scope, i).await)
        }
        Request::DescribeAuditTask(i) => encode(engine.describe_audit_task(scope, i).await),
        Request::CancelAuditTask(i) => encode(engine.cancel_audit_task(scope, i).await),
        Request::ListAuditTasks(i) => encode(engine.list_audit_tasks(scope, i).await),
        Request::ListAuditFindings(i) => encode(engine.list_audit_findings(scope, i).await),
        Request::DescribeAuditFinding(i) => encode(engine.describe_audit_finding(scope, i).await),
        Request::CreateAuditSuppression(i) => {
            encode(engine.create_audit_suppression(scope, i).await)
        }
        Request::DescribeAuditSuppression(i) => {
            encode(engine.describe_audit_suppression(scope, i).await)
        }
        Request::UpdateAuditSuppression(i) => {
            encode(engine.update_audit_suppression(scope, i).await)
        }
        Request::DeleteAuditSuppression(i) => {
            encode(engine.delete_audit_suppression(scope, i).await)
        }
        Request::ListAuditSuppressions(i) => encode(engine.list_audit_suppressions(scope, i).await),
        Request::CreateScheduledAudit(i) => encode(engine.create_scheduled_audit(scope, i).await),
        Request::DescribeScheduledAudit(i) => {
            encode(engine.describe_scheduled_audit(scope, i).await)
        }
        Request::UpdateScheduledAudit(i) => encode(engine.update_scheduled_audit(scope, i).await),
        Request::DeleteScheduledAudit(i) => encode(engine.delete_scheduled_audit(scope, i).await),
        Request::ListScheduledAudits(i) => encode(engine.list_scheduled_audits(scope, i).await),
        Request::ListRelatedResourcesForAuditFinding(i) => encode(
            engine
                .list_related_resources_for_audit_finding(scope, i)
                .await,
        ),
        other => return Err(other),
    })
}
