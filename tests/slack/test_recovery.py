"""Recovery in-process: open turns of an owner that is gone — an upload, an approval wait, answers of a
replica whose lease ran out — are each closed or answered once by the live process."""
from __future__ import annotations

from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.edit_budget import EditBudgets
from bot.slack.recovery import Recovery
from bot.messages import Message, TextBlock
from bot.store import NewTurn
from tests.fakes import slack as fs
from tests.slackapp import running_bot


async def test_an_upload_and_an_approval_left_open_are_reported_once_and_the_buttons_go(tmp_path):
    async with running_bot(tmp_path) as bot:
        store, slack = bot.services.store, bot.slack
        client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url)
        parent = fs.next_ts()
        progress = (await client.chat_postMessage(channel=fs.DM_CHANNEL_ID, thread_ts=parent,
                                                  text=":hourglass_flowing_sand: Reading report.pdf…"))["ts"]
        question = (await client.chat_postMessage(channel=fs.CHANNEL_ID, thread_ts=parent, text="Approval needed",
                                                  blocks=[{"type": "actions", "elements": []}]))["ts"]
        await store.renew_owner("dead", lease_s=-1)
        await store.claim_turn(owner="dead", turn=NewTurn(
            kind="upload", team_id="", channel_id=fs.DM_CHANNEL_ID, thread_ts=parent, ts=parent, user_id=fs.USER_ID,
            text="report.pdf", reply_ts=progress, details={"interrupted": ":warning: I couldn't add report.pdf."}))
        await store.claim_turn(owner="dead", turn=NewTurn(
            kind="approval", team_id="", channel_id=fs.CHANNEL_ID, thread_ts=parent, ts=question,
            user_id=fs.USER_ID, text="create_issue", reply_ts=question,
            details={"interrupted": "⏹️ create_issue was not run."}))
        recovery = Recovery(bot.services, EditBudgets(), client)
        await recovery.start()
        await recovery.idle()
        assert slack.message(fs.DM_CHANNEL_ID, progress).text == ":warning: I couldn't add report.pdf."
        closed = slack.message(fs.CHANNEL_ID, question)
        assert closed.text == "⏹️ create_issue was not run." and not closed.blocks
        assert recovery.handled == {"upload": 1, "approval": 1}
        assert await recovery.adopt() == 0  # handled once: nothing is left for anyone
        await recovery.stop()


async def test_a_live_replica_answers_the_turns_of_one_whose_lease_ran_out_but_not_of_a_live_one(tmp_path):
    async with running_bot(tmp_path) as bot:
        store, slack = bot.services.store, bot.slack
        client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url)
        await store.renew_owner("gone", lease_s=-1)
        await store.renew_owner("alive", lease_s=60)
        asked = {}
        for owner in ("gone", "alive"):
            ts = fs.next_ts()
            asked[owner] = ts
            await store.claim_turn(f"msg:{fs.CHANNEL_ID}:{ts}", owner=owner, turn=NewTurn(
                kind="answer", team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=ts, ts=ts,
                user_id=fs.USER_ID, surface="mention", text=f"question of {owner}",
                details={"bot_user_id": fs.BOT_USER_ID}))
        store.shared_by_replicas = True  # as on PostgreSQL: only leases say who is gone
        recovery = Recovery(bot.services, EditBudgets(), client)
        await recovery.start()
        await recovery.idle()
        await bot.final_text(fs.CHANNEL_ID, asked["gone"], "echo: question of gone")
        assert bot.bot_messages(fs.CHANNEL_ID, asked["alive"]) == []
        assert len(bot.model.requests) == 1 and recovery.handled == {"resume": 1}
        assert await recovery.adopt() == 0
        await recovery.stop()


async def test_a_summary_left_streaming_keeps_its_text_ends_with_the_notice_and_its_history_is_closed(tmp_path):
    async with running_bot(tmp_path) as bot:
        store, slack = bot.services.store, bot.slack
        client = AsyncWebClient(token=fs.BOT_TOKEN, base_url=slack.api_url)
        parent = fs.next_ts()
        partial = "Bob found the migration; Carol"
        shown = (await client.chat_postMessage(channel=fs.CHANNEL_ID, thread_ts=parent, text=partial))["ts"]
        await store.renew_owner("dead", lease_s=-1)
        turn_id = await store.claim_turn(f"shortcut:{fs.CHANNEL_ID}:1.5", owner="dead", turn=NewTurn(
            kind="summary", team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=parent, ts="1.5",
            user_id=fs.USER_ID, surface="shortcut", text="Summarise this thread"))
        assert turn_id is not None
        conversation = await store.conversation_id(team_id=fs.TEAM_ID, channel_id=fs.CHANNEL_ID, thread_ts=parent,
                                                   user_id=fs.USER_ID)
        [question] = await store.append_messages(conversation, [Message("user", [TextBlock("Summarise")])])
        await store.turn_question_saved(turn_id, conversation_id=conversation, question_id=question)
        await store.turn_shown(turn_id, reply_ts=shown, shown_text=partial, streaming=True)
        recovery = Recovery(bot.services, EditBudgets(), client)
        await recovery.start()
        await recovery.idle()
        text = slack.message(fs.CHANNEL_ID, shown).text
        assert text.startswith(partial + "\n\n") and "interrupted" in text.lower(), text
        assert await store.last_role(conversation) == "assistant"
        assert bot.model.requests == [] and recovery.handled == {"close": 1}
        assert await store.turn_outcome(turn_id) == "closed"
        await recovery.stop()
